"""Seeding: COPY of generated rows, several tables at once, with secondary indexes dropped
during the load and rebuilt after, triggers off (rows are consistent by construction). A run
is recorded in app.seed_runs; an unfinished one is wiped by the next run."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any, Literal

import psycopg
from psycopg.types.json import Jsonb

from harness.clients.addresses import connection_error
from harness.core.errors import ConfigError, HarnessError, StateError
from harness.core.progress import Say, silent
from harness.data.crmdata import CrmData
from harness.data.scales import TABLES
from harness.lab.topology import SCOPE

LOADERS = 2  # COPY connections: generation (client CPU) overlaps the server's work
SEED_RUNS = """
CREATE TABLE IF NOT EXISTS app.seed_runs (
    id          bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    seed        bigint NOT NULL,
    counts      jsonb NOT NULL,
    started_at  timestamptz NOT NULL DEFAULT now(),
    finished_at timestamptz
)"""

Progress = Callable[[str, int], None]  # table, rows just loaded


@dataclass
class SeedReport:
    outcome: Literal["seeded", "unchanged"]
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)  # phase -> seconds


def connect_primary(dsn: str, force: bool) -> psycopg.Connection[Any]:
    """Connect, and refuse a target that is not a writable lab primary."""
    try:
        conn = psycopg.connect(dsn, autocommit=True)
    except psycopg.OperationalError as exc:
        raise connection_error(
            exc, "database", "is the lab up? `make status`; `make dev-up` starts it", dsn
        ) from None
    row = conn.execute(
        "select current_setting('cluster_name'), pg_is_in_recovery(), "
        "to_regclass('public.leads') is not null"
    ).fetchone()
    assert row is not None
    cluster, read_only, migrated = row
    if read_only:
        conn.close()
        raise HarnessError("the target is read-only (a replica)", "seed through the rw endpoint")
    if cluster != SCOPE and not force:
        conn.close()
        raise ConfigError(
            f"the target's cluster_name is {cluster!r}, not the lab's {SCOPE!r}",
            "seeding replaces data: point it at the lab, or pass --force if you mean it",
        )
    if not migrated:
        conn.close()
        raise StateError("the CRM schema is missing", "run `harness migrate` first")
    return conn


def seeded(conn: psycopg.Connection[Any]) -> bool:
    """Whether a seed run finished on this database (the schema may not even exist yet)."""
    row = conn.execute("SELECT to_regclass('app.seed_runs') IS NOT NULL").fetchone()
    if not row or not row[0]:
        return False
    done = conn.execute("SELECT EXISTS (SELECT FROM app.seed_runs WHERE finished_at IS NOT NULL)")
    return done.fetchone() == (True,)


def seed(
    dsn: str,
    data: CrmData,
    *,
    reset: bool,
    force: bool,
    progress: Progress = lambda table, rows: None,
    say: Say = silent,
) -> SeedReport:
    report = SeedReport("seeded")
    with connect_primary(dsn, force) as conn:
        conn.execute(SEED_RUNS)
        last = conn.execute(
            "select seed, counts, finished_at from app.seed_runs order by id desc limit 1"
        ).fetchone()
        wanted = {"seed": data.seed, "counts": data.counts}
        if last is not None:
            finished = last[2] is not None
            if finished and {"seed": last[0], "counts": last[1]} == wanted and not reset:
                return SeedReport("unchanged")
            if finished and not reset:
                raise StateError(
                    f"the lab holds seed {last[0]} at other counts",
                    "pass --reset to replace it (deletes the CRM data)",
                )
            if not finished:
                say("an earlier seed did not finish: starting over")
        start = time.monotonic()
        conn.execute(f"TRUNCATE {', '.join(TABLES)} RESTART IDENTITY CASCADE")
        conn.execute("DELETE FROM app.seed_runs")
        run_id = conn.execute(
            "insert into app.seed_runs (seed, counts) values (%s, %s) returning id",
            (data.seed, Jsonb(data.counts)),
        ).fetchone()[0]  # type: ignore[index]
        indexes = secondary_indexes(conn)
        for name, _ in indexes:
            conn.execute(f"DROP INDEX {name}")
        report.seconds["prepare"] = time.monotonic() - start

        start = time.monotonic()
        data.pools  # noqa: B018 - drawn once, before the loaders share it
        load_tables(dsn, data, progress)
        report.seconds["load"] = time.monotonic() - start

        start = time.monotonic()
        rebuild_indexes(dsn, [definition for _, definition in indexes])
        for table in TABLES:
            conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), "
                f"(SELECT coalesce(max(id), 1) FROM {table}))"
            )
        report.seconds["index"] = time.monotonic() - start

        start = time.monotonic()
        # COPY leaves rows without hint bits or a visibility map: the first load would set the
        # bits (WAL-logged, the cluster has checksums), visit the heap in every index-only
        # scan, and meet autovacuum's pass over the new rows halfway. Done here, once.
        conn.execute(f"VACUUM (FREEZE, ANALYZE) {', '.join(TABLES)}")
        conn.execute("update app.seed_runs set finished_at = now() where id = %s", (run_id,))
        report.seconds["vacuum"] = time.monotonic() - start
    report.rows = dict(data.counts)
    return report


def secondary_indexes(conn: psycopg.Connection[Any]) -> list[tuple[str, str]]:
    """Indexes that are neither primary keys nor unique constraints, on the CRM tables.

    A partitioned table's index is defined `ON ONLY` the parent by pg_get_indexdef: rebuilt
    as given it would cover no partition (the messages' indexes did not, so the dashboard
    scanned every month's primary key). Rebuilt without ONLY, it covers them all again."""
    return [
        (row[0], row[1])
        for row in conn.execute(
            """select i.indexrelid::regclass::text,
                      case when x.relkind = 'I'
                           then replace(pg_get_indexdef(i.indexrelid), ' ON ONLY ', ' ON ')
                           else pg_get_indexdef(i.indexrelid) end
               from pg_index i join pg_class t on t.oid = i.indrelid
                    join pg_class x on x.oid = i.indexrelid
               where t.relname = any(%s) and not i.indisprimary and not i.indisunique""",
            (list(TABLES),),
        )
    ]


def load_tables(dsn: str, data: CrmData, progress: Progress) -> None:
    lock = threading.Lock()

    def load(table: str) -> None:
        with psycopg.connect(dsn) as conn:
            # Rows are consistent by construction: skip FK checks, audit and updated_at triggers.
            conn.execute("SET session_replication_role = replica")
            columns = ", ".join(data.columns(table))
            with conn.cursor() as cur, cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for chunk in data.rows(table):
                    copy.write(chunk)
                    with lock:
                        progress(table, chunk.count("\n"))

    biggest_first = sorted(TABLES, key=lambda t: -data.counts[t])
    with ThreadPoolExecutor(LOADERS) as pool:
        for future in [pool.submit(load, table) for table in biggest_first]:
            future.result()


def rebuild_indexes(dsn: str, definitions: list[str]) -> None:
    def build(definition: str) -> None:
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute("SET maintenance_work_mem = '256MB'")
            conn.execute(definition)

    with ThreadPoolExecutor(LOADERS) as pool:
        for future in [pool.submit(build, d) for d in definitions]:
            future.result()
