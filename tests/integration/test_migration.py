"""The move off the Supabase stand-in on the real stack: preflight, sync, a cutover and a
rollback with writers running through the application endpoint the whole time, and nothing
lost either way.

The chaos workload's writers insert unique ids under the legacy table name through the
endpoint (127.0.0.1:6433 in the dev lab) and record every attempt as ack / fail / unknown;
every row acknowledged before the rollback must be on the cluster, and every row
acknowledged at all must be on the source at the end. Write gaps are printed, never
asserted.
"""

from __future__ import annotations

import time
from collections.abc import Iterator

import psycopg
import pytest

from harness.chaos.invariants import account
from harness.chaos.workload import Workload, WorkloadTarget
from harness.cli.migration import lab_ddl_dumper
from harness.core.errors import StateError
from harness.migration.check import check
from harness.migration.cutover import cutover, rollback
from harness.migration.endpoint import Endpoint
from harness.migration.plan import NAME, RENAMES, REVERSE, Move
from harness.migration.slots import PatroniSlots
from harness.migration.sync import finish, start, status, wait_copied
from harness.migration.verify import verify
from harness.migration.writes import APP_WRITES
from harness.provision.source import start_source, write_endpoint
from harness.stack.lifecycle import Stack
from tests.realstack import ready

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
WRITERS = 2


def put_cluster_back(move: Move, stack: Stack, created: list[str]) -> None:
    """The clean schema as the other suites expect it: no views, clean names, no rows."""
    finish(move, PatroniSlots(stack))
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
        conn.execute("ALTER TABLE clients DROP COLUMN IF EXISTS nickname")
        conn.execute("DROP FUNCTION IF EXISTS auth.uid()")
        if conn.execute("select to_regclass('app.seed_runs')").fetchone() != (None,):
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
        put_cluster_back(the_move, stack, created)


def test_preflight_names_the_traps_and_passes_a_lab_source(move: Move) -> None:
    items = {i.name: i for i in check(move, reset=True)}
    assert items["wal_level"].verdict == "pass"
    assert items["replica identity"].verdict == "handled"
    assert "public.lead_imports" in items["replica identity"].detail
    assert "leads_ins_info -> leads" in items["rename map"].detail
    assert not [i for i in items.values() if i.verdict == "fail"], items


def test_ctrl_c_while_preparing_undoes_the_preparation(move: Move) -> None:
    def interrupted(tables: list[str]) -> str:
        raise KeyboardInterrupt  # as Ctrl-C lands after the renames, before the DDL

    with pytest.raises(KeyboardInterrupt):
        start(move, interrupted, reset=True)
    with psycopg.connect(move.cluster_dsn, autocommit=True) as conn:
        names = conn.execute(
            "select to_regclass('public.leads') is not null, "
            "to_regclass('public.leads_ins_info') is null, "
            "not exists (select from pg_subscription), "
            "to_regnamespace(%s) is null",
            (NAME,),
        ).fetchone()
    assert names == (True, True, True, True)
    with psycopg.connect(move.source_dsn, autocommit=True) as conn:
        published = conn.execute("select count(*) from pg_publication where pubname = %s", (NAME,))
        assert published.fetchone() == (0,)
    assert not [i for i in check(move, reset=True) if i.verdict == "fail"]  # start can run again


def test_sync_cutover_and_rollback_under_writes_lose_nothing(move: Move, stack: Stack) -> None:
    endpoint = Endpoint.at(
        move.endpoint_admin_dsn, lambda host, port: write_endpoint(stack.lab, host, port)
    )
    app = stack.lab.dsn("endpoint", connect_timeout=2, keepalives=True)
    target = WorkloadTarget(app, app, move.source_dsn, tuple(stack.lab.rest_urls()))
    writes = Workload(target, writers=WRITERS, readers=0, max_seconds=150, table=APP_WRITES)
    with writes:
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
        # DDL is not replicated: status names it until the cluster has it too.
        add = "ALTER TABLE leads_contact_info ADD COLUMN nickname text"
        with psycopg.connect(move.source_dsn, autocommit=True) as conn:
            conn.execute(add)
        assert status(move).drift == ["public.leads_contact_info: nickname not on the cluster"]
        with psycopg.connect(move.cluster_dsn, autocommit=True) as conn:
            conn.execute(add)
        assert status(move).drift == []

        cut_at = writes.now()
        forward = cutover(move, endpoint, slots=PatroniSlots(stack))
        cut_done = writes.now()
        assert endpoint.upstream() == move.cluster_upstream
        time.sleep(2)  # writes land on the cluster, and flow back to the source
        window = status(move)
        assert not window.enabled and window.reverse_lag_bytes is not None

        back_at = writes.now()
        back = rollback(move, endpoint)
        back_done = writes.now()
        assert endpoint.upstream() == move.source_upstream
        time.sleep(1)
    record = writes.record
    print(
        f"writes: {record.count('ack')} ack, {record.count('fail')} fail, "
        f"{record.count('unknown')} unknown"
    )
    for name, report, low, high in (
        ("cutover", forward, cut_at, cut_done),
        ("rollback", back, back_at, back_done),
    ):
        print(
            f"{name}: steps {', '.join(f'{k} {v:.3f}' for k, v in report.steps.items())}; "
            f"paused {report.paused_seconds:.3f} s; "
            f"largest gap between acks {record.ack_gap(low - 1, high + 1):.3f} s"
        )
        assert report.orphans == {}

    on_cluster, on_source = APP_WRITES.ids_on(move.cluster_dsn), APP_WRITES.ids_on(move.source_dsn)
    to_cluster, to_source = account(record, on_cluster, back_at), account(record, on_source)
    assert not to_cluster.problems, f"on the way to the cluster: {to_cluster.problems}"
    assert not to_source.problems, f"on the way back: {to_source.problems}"
    taken_by_cluster = record.acked(before=back_at) - record.acked(before=cut_at)
    assert taken_by_cluster, "no write acknowledged in the rollback window"

    with psycopg.connect(move.cluster_dsn, autocommit=True) as conn:
        # The stored generated column was computed on the cluster, not carried.
        wrong = conn.execute(
            "select count(*) from lead_imports "
            "where phone_digits is distinct from regexp_replace(raw_phone, '[^0-9]', '', 'g')"
        ).fetchone()
        assert wrong == (0,)
    with psycopg.connect(move.source_dsn, autocommit=True) as conn:
        # Sequences were carried both ways: the source's next id is past the cluster's rows.
        top = conn.execute("select max(id) from leads").fetchone()
        new_id = conn.execute(
            "insert into leads (agency_id, full_name, status, source) "
            "values (1, 'x', 'new', 'after') returning id"
        ).fetchone()
        assert top is not None and new_id is not None and new_id[0] > top[0]
    comparisons = verify(move, live="source")
    different = [
        (c.source_table, c.source, c.cluster, c.first_keys) for c in comparisons if not c.passed
    ]
    assert not different
    assert {c.cluster_table for c in comparisons} >= {"public.leads", "public.clients"}


def test_finish_leaves_nothing_that_holds_wal(move: Move, stack: Stack) -> None:
    finish(move, PatroniSlots(stack))
    with psycopg.connect(move.source_dsn, autocommit=True) as conn:
        slots = conn.execute("select count(*) from pg_replication_slots").fetchone()
        publications = conn.execute(
            "select count(*) from pg_publication where pubname = %s", (NAME,)
        ).fetchone()
    assert slots == (0,) and publications == (0,)
    with psycopg.connect(move.cluster_dsn, autocommit=True) as conn:
        reverse = conn.execute(
            "select count(*) from pg_replication_slots where slot_name = %s", (REVERSE,)
        ).fetchone()
    assert reverse == (0,)
    with pytest.raises(StateError, match="no move is running"):
        status(move)
