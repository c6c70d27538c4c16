"""The migration drill on the real stack: every check of `harness migration drill` holds
(nothing acknowledged lost either way through two failovers, verify equal both ways, the
way back alive after a failover, nothing left holding WAL). About two minutes on top of
the stack: `chaos` only, not in CI's subset. Figures are printed, never asserted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.cli.migration import lab_ddl_dumper
from harness.migration.drill import DrillResult, run_drill, summary, write_report
from harness.migration.endpoint import Endpoint
from harness.migration.plan import Move
from harness.migration.slots import PatroniSlots
from harness.provision.source import fresh_source, remove_source, start_source, write_endpoint
from harness.stack.lifecycle import Stack
from tests.integration.test_migration import put_cluster_back
from tests.realstack import ready

pytestmark = [pytest.mark.chaos, pytest.mark.timeout(900)]


@pytest.fixture
def move(stack: Stack) -> Iterator[Move]:
    ready(stack)
    start_source(stack, "small")
    write_endpoint(stack.lab, "source", 5432)
    the_move = Move.of_lab(stack.lab)
    try:
        yield the_move
    finally:
        put_cluster_back(the_move, stack, ["auth.users", "public.lead_imports"])
        remove_source(stack)  # renamed and written to: the next user prepares it afresh


def test_the_drill_loses_nothing_through_two_failovers(move: Move, stack: Stack) -> None:
    lab = stack.lab
    endpoint = Endpoint.at(move.endpoint_admin_dsn, lambda h, p: write_endpoint(lab, h, p))
    result: DrillResult = run_drill(
        stack,
        move,
        endpoint,
        PatroniSlots(stack),
        lab_ddl_dumper(stack),
        lambda: fresh_source(stack, "small"),
        say=print,
    )
    paths = write_report(result, Path(lab.artifacts("migration-drill")))
    print(summary(result))
    print(f"report: {paths}")
    failed = [f"{c.name}: {c.detail}" for c in result.checks if not c.passed]
    assert not failed, failed
    assert {f.phase for f in result.failovers} == {"streaming", "rollback window"}
    sides = {result.side(a.server) for a in result.record.attempts if a.outcome == "ack"}
    assert sides == {"source", "cluster"}
