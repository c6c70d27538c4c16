"""The drill's judgement, figures and report, from a recorded run (no engine)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from harness import cli
from harness.chaos.invariants import Accounting
from harness.chaos.workload import Attempt, Record
from harness.cli.app import App
from harness.core.progress import Say
from harness.lab.project import Lab
from harness.migration.cutover import CutoverReport
from harness.migration.drill import (
    DrillResult,
    Failover,
    judge,
    live_lag,
    summary,
    write_report,
)
from harness.migration.sync import FinishReport
from harness.migration.verify import Comparison
from harness.stack.lifecycle import Stack

SOURCE, CLUSTER = "172.20.0.9", "172.20.0.3"


def attempt(n: int, ended: float, outcome: str = "ack", server: str = SOURCE) -> Attempt:
    return Attempt(n, 1, ended - 0.01, ended, outcome, server if outcome == "ack" else "", "")  # type: ignore[arg-type]


def lost(ids: list[int]) -> Accounting:
    return Accounting(ids, [], [], [])


def equal(table: str) -> Comparison:
    return Comparison(table, table, (10, 7), (10, 7), None)


def a_clean_run() -> DrillResult:
    record = Record()
    record.attempts = [attempt(1, 1.0), attempt(2, 2.0), attempt(3, 3.4, server=CLUSTER)]
    record.attempts += [attempt(4, 3.5, "unknown"), attempt(5, 6.0)]
    record.marks = {
        "cutover start": 2.5,
        "cutover end": 3.0,
        "failover (streaming)": 1.5,
        "failover (rollback window)": 4.0,
        "rollback start": 5.0,
        "rollback end": 5.5,
        "writers stopped": 7.0,
    }
    result = DrillResult(record, source_address=SOURCE)
    result.cutover = CutoverReport(paused_seconds=0.3)
    result.rollback = CutoverReport(paused_seconds=0.2)
    result.failovers = [
        Failover("streaming", "pg1", "pg2", 2.0, 4.0),
        Failover("rollback window", "pg2", "pg3", 2.0, 3.0, 6.0),
    ]
    result.verified = {"after cutover": [equal("public.leads")], "after rollback": [equal("x")]}
    result.finished = FinishReport(dropped=["slot"])
    result.on_cluster = result.on_source = Accounting([], [], [], [4])
    return result


def test_a_clean_run_passes_every_check_and_gets_its_figures() -> None:
    result = a_clean_run()
    judge(result)
    assert result.passed, [c for c in result.checks if not c.passed]
    assert result.figures["cutover write gap seconds"] == pytest.approx(1.4)  # 2.0 -> 3.4
    assert result.figures["unknown"] == 1 and result.figures["rollback client errors"] == 0
    assert result.figures["rollback seconds"] == pytest.approx(0.5)


@pytest.mark.parametrize(
    ("spoil", "failing"),
    [
        (lambda r: setattr(r, "on_cluster", lost([7])), "on the way to the cluster"),
        (lambda r: setattr(r, "on_source", lost([7])), "on the way back to the source"),
        (
            lambda r: setattr(r, "on_source", Accounting([], [], [3], [])),
            "on the way back to the source",
        ),
        (
            lambda r: setattr(r, "on_cluster", Accounting([], [99], [], [])),
            "on the way to the cluster",
        ),
        (
            lambda r: r.verified.update(
                {"after rollback": [Comparison("t", "t", (1, 1), (2, 2), None)]}
            ),
            "verify after rollback",
        ),
        (lambda r: r.verified.pop("after cutover"), "verify after cutover"),
        (lambda r: setattr(r, "leftovers", ["slot gardenlab_rollback (pg3)"]), "finish left"),
        (lambda r: setattr(r, "error", "rollback: the slot is gone"), "drill completed"),
        (
            lambda r: setattr(r.failovers[1], "resumed_seconds", None),
            "survived the failover in the rollback window",
        ),
    ],
)
def test_each_check_can_fail(spoil: object, failing: str) -> None:
    result = a_clean_run()
    spoil(result)  # type: ignore[operator]
    judge(result)
    assert not result.passed
    assert [c.name for c in result.checks if not c.passed] == [
        c.name for c in result.checks if failing in c.name
    ]


def test_the_gap_counts_from_the_window_edges() -> None:
    record = Record()
    record.attempts = [attempt(1, 1.0), attempt(2, 1.2), attempt(3, 1.5, "fail"), attempt(4, 2.0)]
    assert record.ack_gap(1.0, 2.0) == pytest.approx(0.8)
    assert record.ack_gap(0.0, 3.0) == pytest.approx(1.0)
    assert record.acked(before=1.5) == {1, 2} and record.count("fail") == 1
    assert record.errors_between(1.0, 2.0) == 1 and record.errors_between(1.6, 2.0) == 0


def test_the_plotted_lag_is_the_path_the_writes_take() -> None:
    result = a_clean_run()
    result.lag = [
        (1.0, "forward", 2048),
        (1.0, "back", 99),
        (4.0, "forward", 5),
        (4.0, "back", 1024),
    ]
    assert live_lag(result) == [(1.0, 2.0), (4.0, 1.0)]


def test_the_report_is_json_a_summary_and_a_timeline(tmp_path: Path) -> None:
    result = a_clean_run()
    judge(result)
    json_path, text_path, png_path = write_report(result, tmp_path / "drill")
    data = json.loads(json_path.read_text())
    assert data["passed"] is True and len(data["workload"]["attempts"]) == 5
    assert text_path.read_text() == summary(result)
    assert "failover (rollback window): pg2 -> pg3" in summary(result)
    assert png_path.stat().st_size > 10_000


def no_stack(lab: Lab, say: Say) -> Stack:
    raise AssertionError("the lab must not be touched")


def test_the_drill_refuses_a_real_source_before_touching_anything() -> None:
    args = ["migration", "--source", "host=db.example port=5432", "drill"]
    result = CliRunner().invoke(cli.cli, args, obj=App(stack_factory=no_stack))
    assert result.exit_code == 2, result.output
    assert "lab's own source" in result.output
