"""The cutover: pause the endpoint, wait until the cluster applied everything the source
wrote, carry the sequences, stop applying, rename to the clean names, repoint, resume.

Caught up is proven, not estimated: under PAUSE a row goes into the source's marks table
(published like the rest); commits apply in order, so once that row is on the cluster,
everything the source committed before it is too. Waiting for the slot's
confirmed_flush_lsn to pass pg_current_wal_lsn() works as well but follows the
subscriber's status interval (up to wal_receiver_status_interval, 10 s by default).

Whatever happens in between (an error, Ctrl-C), the endpoint is resumed: pointing at the
source when the repoint did not happen, at the cluster when it did. The legacy names stay
on the cluster as updatable views (security_invoker, so row-level security still applies)
for the application's old queries; drop them once it uses the clean names.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from psycopg import sql

from harness.core.errors import HarnessError, StateError
from harness.core.polling import poll
from harness.core.progress import Say, silent
from harness.core.units import format_bytes
from harness.migration.catalog import Conn, carried_tables, connect, scalar, sequences
from harness.migration.endpoint import Endpoint
from harness.migration.plan import LAG_THRESHOLD, MARKS, NAME, RENAMES, Move, clean_name, quoted
from harness.migration.sync import status

VIEW_ROLES = ("crm_app", "authenticated", "service_role")


@dataclass
class CutoverReport:
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds, in order
    paused_seconds: float = 0.0  # PAUSE issued to RESUME answered: the write gap's bound
    sequences: dict[str, int] = field(default_factory=dict)  # sequence -> value set
    renamed: list[tuple[str, str]] = field(default_factory=list)
    orphans: dict[str, int] = field(default_factory=dict)  # foreign key -> rows without parent
    repointed: bool = False

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = time.monotonic() - start


def refuse_unless_ready(move: Move, threshold: int) -> None:
    current = status(move)
    if current.source_error:
        raise StateError(
            f"the source cannot be read ({current.source_error}): cannot prove the cluster "
            "caught up",
            "`harness migration status`; bring the source back before the cutover",
        )
    if not current.copied:
        pending = [t.table for t in current.tables if t.state not in ("s", "r")]
        raise StateError(
            f"the initial copy is not finished: {', '.join(pending[:5])}",
            "wait for `harness migration status` to show every table streaming",
        )
    lag = current.lag_bytes or 0
    if lag > threshold:
        raise StateError(
            f"lag is {format_bytes(lag)} ({current.lag_seconds or 0:.1f} s), above the "
            f"threshold of {format_bytes(threshold)}",
            "wait for it to fall (`harness migration status`), or raise --max-lag",
        )


def sync_sequences(source: Conn, cluster: Conn, tables: list[str]) -> dict[str, int]:
    """Every sequence past both its column's maximum and the source's own value: sequences
    are not replicated, so the cluster's still hold their start values."""
    done: dict[str, int] = {}
    for table in tables:
        for column, sequence in sequences(cluster, table):
            top = scalar(cluster, f'select max("{column}") from {quoted(table)}')
            there = scalar(
                source,
                "select last_value from pg_sequences where schemaname || '.' || sequencename = "
                "%s or quote_ident(schemaname) || '.' || quote_ident(sequencename) = %s",
                (sequence, sequence),
            )
            value = max(v for v in (top, there, 1) if v is not None)
            cluster.execute("select setval(%s, %s)", (sequence, value))
            done[sequence] = int(value)
    return done


def rename(cluster: Conn, tables: list[str]) -> list[tuple[str, str]]:
    """Legacy names to clean ones in one transaction; the legacy name becomes a view."""
    renamed = []
    with cluster.transaction():
        for table in tables:
            target = clean_name(table)
            if target == table:
                continue
            schema, _, legacy = table.rpartition(".")
            clean = target.rpartition(".")[2]
            cluster.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    sql.Identifier(schema, legacy), sql.Identifier(clean)
                )
            )
            cluster.execute(
                sql.SQL("CREATE VIEW {} WITH (security_invoker = true) AS SELECT * FROM {}").format(
                    sql.Identifier(schema, legacy), sql.Identifier(schema, clean)
                )
            )
            cluster.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                    sql.Identifier(schema, legacy),
                    sql.SQL(", ").join(sql.Identifier(r) for r in VIEW_ROLES),
                )
            )
            renamed.append((table, target))
    return renamed


def wait_applied(source: Conn, cluster: Conn, timeout: float) -> int:
    mark = scalar(source, f"insert into {MARKS} (note) values ('cutover') returning id")
    polled = poll(
        lambda: bool(
            scalar(cluster, f"select exists (select from {MARKS} where id = %s)", (mark,))
        ),
        bool,
        timeout=timeout,
        interval=0.01,
    )
    if not polled.held:
        raise HarnessError(
            f"the cluster did not apply the source's last writes within {timeout:.0f} s",
            "nothing was switched; `harness migration status` shows the apply worker",
        )
    return int(mark)


def orphans(cluster: Conn, tables: list[str]) -> dict[str, int]:
    """Rows whose foreign key has no parent: the apply worker checks no foreign keys."""
    found: dict[str, int] = {}
    rows = cluster.execute(
        """select conname, conrelid::regclass::text, confrelid::regclass::text,
                  array(select attname from unnest(conkey) k join pg_attribute a
                        on a.attrelid = conrelid and a.attnum = k),
                  array(select attname from unnest(confkey) k join pg_attribute a
                        on a.attrelid = confrelid and a.attnum = k)
           from pg_constraint where contype = 'f' and conrelid = any(%s::regclass[])
             and conparentid = 0""",
        ([clean_name(t) for t in tables],),
    ).fetchall()
    for name, child, parent, keys, refs in rows:
        present = " and ".join(f'c."{k}" is not null' for k in keys)
        match = " and ".join(f'p."{r}" = c."{k}"' for k, r in zip(keys, refs, strict=True))
        count = scalar(
            cluster,
            f"select count(*) from {child} c where {present} "
            f"and not exists (select from {parent} p where {match})",
        )
        if count:
            found[f"{child}.{name}"] = int(count)
    return found


def cutover(
    move: Move,
    endpoint: Endpoint,
    *,
    max_lag: int = LAG_THRESHOLD,
    pause_timeout: float = 10.0,
    catch_up_timeout: float = 30.0,
    say: Say = silent,
) -> CutoverReport:
    refuse_unless_ready(move, max_lag)
    report = CutoverReport()
    with connect(move.source_dsn, "source") as source, connect(move.cluster_dsn, "cluster") as cl:
        tables = carried_tables(source)
        paused_at = time.monotonic()
        with report.step("pause"):
            endpoint.pause(pause_timeout)
        try:
            with report.step("catch-up"):
                wait_applied(source, cl, catch_up_timeout)
            with report.step("sequences"):
                report.sequences = sync_sequences(source, cl, tables)
            with report.step("stop apply"):
                cl.execute(f"ALTER SUBSCRIPTION {NAME} DISABLE")
            with report.step("rename"):
                report.renamed = rename(cl, tables)
            with report.step("repoint"):
                endpoint.repoint(*move.cluster_upstream)
                report.repointed = True
        finally:
            with report.step("resume"):
                endpoint.resume()
            report.paused_seconds = time.monotonic() - paused_at
            where = "the cluster" if report.repointed else "the source"
            say(f"endpoint resumed on {where} after {report.paused_seconds:.2f} s paused")
        with report.step("foreign keys"):
            report.orphans = orphans(cl, tables)
    return report


__all__ = ["RENAMES", "CutoverReport", "cutover"]
