"""Planned work on the real stack: clients of PgBouncer see no error while the leader moves,
bad input changes nothing, and PgBouncer is never left paused."""

from __future__ import annotations

import subprocess
import time
from collections.abc import Iterator

import psycopg
import pytest

from harness.chaos.invariants import client_errors, client_gaps
from harness.chaos.workload import Workload, WorkloadTarget
from harness.clients.pgbouncer import PgBouncerAdmin
from harness.core.errors import StateError
from harness.maintenance.planned import Planned
from harness.stack.lifecycle import Stack
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


@pytest.fixture
def planned(stack: Stack) -> Iterator[Planned]:
    work = Planned(stack, say=print)
    yield work
    assert not work.pooler.paused(), "PgBouncer was left paused"
    stack.wait_ready(120)


def harness(test_env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [".venv/bin/harness", *args], env=test_env, capture_output=True, text=True, timeout=120
    )


def test_a_switchover_through_pgbouncer_costs_its_clients_no_error(
    stack: Stack, planned: Planned
) -> None:
    old = stack.leader()
    target = WorkloadTarget.of_lab(stack.lab, "pooler")
    with Workload(target, writers=4) as load:
        eventually(lambda: len(load.record.attempts) > 40, 20, "writes flowing")
        load.mark("fault")
        result = planned.switchover()
        after = load.now()
        eventually(lambda: any(a.started > after for a in load.record.attempts), 5, "writes after")
        time.sleep(2)
    record = load.record
    acked = record.acked()
    assert result.leader == old and stack.leader() == result.candidate != old
    assert client_errors(record) == 0, [a.error for a in record.attempts if a.outcome != "ack"]
    assert acked <= load.table.ids_on(target.setup_dsn)
    gaps = client_gaps(record, record.marks["fault"])
    print(f"pgbouncer: paused {result.paused:.2f} s, largest client gap {max(gaps.values()):.2f} s")


def test_bad_input_is_one_message_and_a_hint_and_changes_nothing(
    stack: Stack, planned: Planned, test_env: dict[str, str]
) -> None:
    leader = stack.leader()
    for args, says in (
        (["switchover", "--to", leader], "is the leader already"),
        (["switchover", "--to", "pg9"], "is not a member"),
        (["restart", "--rolling"], "no member has a restart pending"),
        (["reinit", leader], "is the leader"),
    ):
        done = harness(test_env, *args)
        assert done.returncode != 0 and says in done.stderr, done.stderr
        assert "hint:" in done.stderr and "Traceback" not in done.stderr
    assert stack.leader() == leader


@pytest.mark.timeout(60)
def test_pgbouncer_held_by_an_open_transaction_gives_up_the_pause(stack: Stack) -> None:
    admin = PgBouncerAdmin(stack.lab.dsn("pooler", dbname="pgbouncer"))
    with psycopg.connect(stack.lab.dsn("pooler"), prepare_threshold=None) as holder:
        holder.execute("SELECT 1")  # a transaction opens and stays open
        with pytest.raises(StateError, match="could not pause within 2 s"):
            admin.pause(2)
        assert not admin.paused()
        holder.rollback()
    with psycopg.connect(stack.lab.dsn("pooler"), autocommit=True) as conn:
        assert conn.execute("SELECT 1").fetchone() == (1,)


def test_a_rolling_restart_applies_a_pending_setting_without_client_errors(
    stack: Stack, planned: Planned
) -> None:
    def pending_everywhere() -> bool:
        with stack.patroni() as patroni:
            return all(m.pending_restart for m in patroni.cluster().members)

    def shared_buffers() -> set[str]:
        return {stack.node_sql(node, "SHOW shared_buffers") for node in ("pg1", "pg2", "pg3")}

    target = WorkloadTarget.of_lab(stack.lab, "pooler")
    try:
        with stack.patroni() as patroni:
            patroni.patch_config({"postgresql": {"parameters": {"shared_buffers": "80MB"}}})
        eventually(pending_everywhere, 20, "a restart pending on every member")
        with Workload(target, writers=4) as load:
            eventually(lambda: len(load.record.attempts) > 40, 20, "writes flowing")
            load.mark("fault")
            result = planned.rolling_restart()
        assert sorted(result.restarted) == ["pg1", "pg2", "pg3"]
        assert result.switchover is not None
        assert result.restarted[-1] == result.switchover.leader
        assert shared_buffers() == {"80MB"}
        assert client_errors(load.record) == 0
        gaps = client_gaps(load.record, load.record.marks["fault"])
        print(f"rolling restart: largest client gap {max(gaps.values()):.2f} s")
    finally:
        with stack.patroni() as patroni:
            patroni.patch_config({"postgresql": {"parameters": {"shared_buffers": "64MB"}}})
        eventually(pending_everywhere, 20, "the old setting pending again")
        planned.rolling_restart()
    assert shared_buffers() == {"64MB"}


def test_reinit_rebuilds_a_replica_that_then_streams(stack: Stack, planned: Planned) -> None:
    with stack.patroni() as patroni:
        replica = next(m.name for m in patroni.cluster().members if not m.is_leader)
    marker = f"reinit-{replica}"
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS reinit_marks (mark text)")
        conn.execute("INSERT INTO reinit_marks VALUES (%s)", (marker,))
    seconds = planned.reinit(replica)
    print(f"reinit {replica}: {seconds:.1f} s")
    eventually(
        lambda: marker in stack.node_sql(replica, "SELECT string_agg(mark, ',') FROM reinit_marks"),
        20,
        "the rebuilt replica holds the leader's rows",
    )
