"""The move off the Supabase stand-in on the real stack: preflight, sync and a cutover with
writers running through the application endpoint the whole time, and nothing lost.

Writers insert unique names through the endpoint (127.0.0.1:6433 in the dev lab) and record
every attempt as ack / fail / unknown; after the cutover every acknowledged row must be on
the cluster, under the clean table name. The write gap is printed, never asserted.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import psycopg
import pytest

from harness.cli.migration import lab_ddl_dumper
from harness.core.errors import StateError
from harness.migration.check import check
from harness.migration.cutover import cutover
from harness.migration.endpoint import Endpoint
from harness.migration.plan import NAME, RENAMES, Move
from harness.migration.sync import finish, start, status, wait_copied
from harness.migration.verify import verify
from harness.provision.source import start_source, write_endpoint
from harness.stack.lifecycle import Stack
from tests.realstack import ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
WRITERS = 2
INSERT = (
    "insert into leads_ins_info (agency_id, full_name, status, source) "
    "values (1, %s, 'new', 'migration-test')"
)


@dataclass
class Writes:
    """Every attempt: (writer, n, started, ended, outcome)."""

    attempts: list[tuple[int, int, float, float, str]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def acked(self) -> set[str]:
        return {f"mt-{w}-{n}" for w, n, _, _, o in self.attempts if o == "ack"}

    def largest_gap(self) -> float:
        ends = sorted(e for *_, e, o in self.attempts if o == "ack")
        return max((b - a for a, b in pairwise(ends)), default=0.0)


def writer(dsn: str, index: int, writes: Writes, deadline: float) -> None:
    n = 0
    conn: psycopg.Connection[Any] | None = None
    while not writes.stop.is_set() and time.monotonic() < deadline:
        n += 1
        began = time.monotonic()
        try:
            if conn is None or conn.broken:
                conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
            conn.execute(INSERT, (f"mt-{index}-{n}",))
            outcome = "ack"
        except psycopg.OperationalError:
            outcome = "unknown" if conn is not None and conn.broken else "fail"
        except psycopg.Error:
            outcome = "fail"
        writes.attempts.append((index, n, began, time.monotonic(), outcome))
        time.sleep(0.01)
    if conn is not None:
        conn.close()


def put_cluster_back(move: Move, created: list[str]) -> None:
    """The clean schema as the other suites expect it: no views, clean names, no rows."""
    finish(move)
    with psycopg.connect(move.cluster_dsn, autocommit=True) as conn:
        for legacy, clean in RENAMES.items():
            kind = conn.execute(
                "select relkind from pg_class where oid = to_regclass(%s)", (f"public.{legacy}",)
            ).fetchone()
            if kind == ("v",):
                conn.execute(f"DROP VIEW public.{legacy}")
            elif kind is not None:
                conn.execute(f"ALTER TABLE public.{legacy} RENAME TO {clean}")
        for table in reversed(created):
            conn.execute(f"DROP TABLE IF EXISTS {table} CASCADE")
        conn.execute(f"DROP SCHEMA IF EXISTS {NAME} CASCADE")
        conn.execute("DROP FUNCTION IF EXISTS auth.uid()")
        conn.execute("DELETE FROM app.seed_runs")  # the next suite seeds afresh


@pytest.fixture(scope="module")
def move(stack: Stack) -> Iterator[Move]:
    ready(stack)
    start_source(stack, "small")
    write_endpoint(stack.lab, "source", 5432)
    the_move = Move.of_lab(stack.lab)
    created: list[str] = ["auth.users", "public.lead_imports"]
    try:
        yield the_move
    finally:
        put_cluster_back(the_move, created)


def test_preflight_names_the_traps_and_passes_a_lab_source(move: Move) -> None:
    items = {i.name: i for i in check(move, reset=True)}
    assert items["wal_level"].verdict == "pass"
    assert items["replica identity"].verdict == "handled"
    assert "public.lead_imports" in items["replica identity"].detail
    assert "leads_ins_info -> leads" in items["rename map"].detail
    assert not [i for i in items.values() if i.verdict == "fail"], items


def test_sync_and_cutover_under_writes_lose_nothing(move: Move, stack: Stack) -> None:
    writes = Writes()
    dsn = stack.lab.dsn("endpoint", connect_timeout=2, keepalives=True)
    deadline = time.monotonic() + 120
    threads = [
        threading.Thread(target=writer, args=(dsn, i, writes, deadline), daemon=True)
        for i in range(WRITERS)
    ]
    for t in threads:
        t.start()
    try:
        started = time.monotonic()
        start(move, lab_ddl_dumper(stack), reset=True)
        with pytest.raises(StateError, match="no move running"):
            start(move, lab_ddl_dumper(stack), reset=True)  # a second start is refused
        wait_copied(move, lambda _: None, timeout=120)
        print(f"initial copy (small) in {time.monotonic() - started:.1f} s")
        time.sleep(1)
        streaming = status(move)
        assert streaming.worker and streaming.slot_active and not streaming.source_error
        print(f"lag while streaming: {streaming.lag_bytes} bytes, WAL held {streaming.held_bytes}")

        endpoint = Endpoint(
            move.endpoint_admin_dsn, lambda host, port: write_endpoint(stack.lab, host, port)
        )
        cut_at = time.monotonic()
        report = cutover(move, endpoint)
        assert endpoint.upstream() == move.cluster_upstream
        time.sleep(2)  # writes land on the cluster now
    finally:
        writes.stop.set()
        for t in threads:
            t.join(10)
    print(f"cutover steps: {report.steps}; paused {report.paused_seconds:.3f} s")
    ack_gap = writes.largest_gap()
    outcomes = [o for *_, o in writes.attempts]
    print(
        f"writes: {outcomes.count('ack')} ack, {outcomes.count('fail')} fail, "
        f"{outcomes.count('unknown')} unknown; largest gap between acks {ack_gap:.3f} s"
    )
    assert report.orphans == {}
    with psycopg.connect(move.cluster_dsn, autocommit=True) as conn:
        on_cluster = {
            r[0]
            for r in conn.execute("select full_name from leads where source = 'migration-test'")
        }
        lost = writes.acked() - on_cluster
        assert not lost, f"{len(lost)} acknowledged writes lost: {sorted(lost)[:5]}"
        after = [a for a in writes.attempts if a[3] > cut_at + report.paused_seconds]
        assert any(o == "ack" for *_, o in after), "no write acknowledged after the cutover"
        # Sequences were carried: the cluster's next id is past everything replicated.
        top = conn.execute("select max(id) from leads where source <> 'migration-test'")
        new_id = conn.execute(
            "insert into leads (agency_id, full_name, status, source) values (1, 'x', 'new', "
            "'after') returning id"
        ).fetchone()
        assert new_id is not None and new_id[0] > (top.fetchone() or (0,))[0]
        # The stored generated column was computed on the cluster, not carried.
        wrong = conn.execute(
            "select count(*) from lead_imports "
            "where phone_digits is distinct from regexp_replace(raw_phone, '[^0-9]', '', 'g')"
        ).fetchone()
        assert wrong == (0,)
    comparisons = verify(move)
    different = [
        (c.source_table, c.source, c.cluster, c.first_keys) for c in comparisons if not c.passed
    ]
    assert not different
    assert {c.cluster_table for c in comparisons} >= {"public.leads", "public.clients"}


def test_finish_leaves_nothing_that_holds_wal(move: Move) -> None:
    finish(move)
    with psycopg.connect(move.source_dsn, autocommit=True) as conn:
        slots = conn.execute("select count(*) from pg_replication_slots").fetchone()
        publications = conn.execute(
            "select count(*) from pg_publication where pubname = %s", (NAME,)
        ).fetchone()
    assert slots == (0,) and publications == (0,)
    with pytest.raises(StateError, match="no move is running"):
        status(move)
