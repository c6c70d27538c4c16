"""Run a scenario: steady load, fault, bounded hold, heal, recovery, then the checks.

The fault always heals, and `heal_all()` runs afterwards whatever happened, so a failed or
interrupted scenario leaves the lab as it found it. Results go to a directory as JSON and a
PNG timeline.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from harness.chaos.invariants import Verdict, judge, leader_changes
from harness.chaos.workload import TABLE, Record, Workload
from harness.data.seed import verify
from harness.faults.controller import Fault, Faults
from harness.reports import timeline
from harness.stack.lifecycle import Stack

RECOVERY_TIMEOUT = 180.0


@dataclass(frozen=True)
class Expectation:
    """What a scenario promises; `failover` None means either outcome is acceptable."""

    failover: bool | None = None
    max_write_gap: float | None = None  # seconds of client-visible write outage
    note: str = ""  # what the platform does, in words, for the report


@dataclass(frozen=True)
class Scenario:
    name: str
    story: str
    fault: Callable[[Faults], Fault]
    hold: float  # seconds the fault stays in place under load
    expect: Expectation
    steady: float = 5.0  # seconds of load before the fault
    recover: float = 8.0  # seconds of load once the cluster is ready again
    endpoint: str = "rw"


@dataclass
class Result:
    scenario: str
    fault: str
    verdict: Verdict
    record: Record
    failures: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.failures

    def to_json(self) -> dict[str, Any]:
        return {
            "scenario": self.scenario,
            "fault": self.fault,
            "passed": self.passed,
            "failures": self.failures,
            "verdict": self.verdict.to_json(),
            "record": self.record.to_json(),
        }


def budget_failures(scenario: Scenario, verdict: Verdict) -> list[str]:
    failures = list(verdict.problems)
    outage, expect = verdict.outage, scenario.expect
    changed = outage.leader_after != outage.leader_before or outage.leader_changes > 0
    if expect.failover is True and not changed:
        failures.append(f"expected a failover, the leader stayed {outage.leader_before}")
    if expect.failover is False and changed:
        failures.append(
            f"expected no failover, leader {outage.leader_before} -> {outage.leader_after}"
        )
    if expect.max_write_gap is not None and (
        outage.gap_end is None or outage.write_gap > expect.max_write_gap
    ):
        failures.append(
            f"write outage {outage.write_gap:.1f} s exceeds the budget of "
            f"{expect.max_write_gap:.1f} s"
        )
    return failures


def present_ids(stack: Stack) -> set[int]:
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        return {row[0] for row in conn.execute(f"SELECT id FROM {TABLE}")}


def run(
    stack: Stack, scenario: Scenario, *, writers: int = 4, say: Callable[[str], None] = print
) -> Result:
    faults = Faults(stack)
    stack.wait_ready(RECOVERY_TIMEOUT)
    description = ""
    try:
        with Workload(stack.lab, writers=writers, endpoint=scenario.endpoint) as load:
            say(f"{scenario.name}: steady state for {scenario.steady:.0f} s")
            time.sleep(scenario.steady)
            fault = scenario.fault(faults)
            description = fault.description
            say(f"{scenario.name}: {description}, held {scenario.hold:.0f} s")
            load.mark("fault")
            with fault:
                time.sleep(scenario.hold)
                load.mark("heal")
            say(f"{scenario.name}: healed; waiting for the cluster")
            stack.wait_ready(RECOVERY_TIMEOUT)
            load.mark("ready")
            time.sleep(scenario.recover)
    finally:
        faults.heal_all()
    stack.wait_ready(RECOVERY_TIMEOUT)
    cluster = stack.status().cluster
    leader = cluster.leader.name if cluster and cluster.leader else ""
    checks = verify(stack.node_sql, leader, tables=(TABLE,))
    differing = [c.table for c in checks if not c.consistent]
    verdict = judge(load.record, present_ids(stack), load.record.marks["fault"], differing)
    result = Result(scenario.name, description, verdict, load.record)
    result.failures = budget_failures(scenario, verdict)
    return result


def summary(result: Result, scenario: Scenario) -> str:
    v, o = result.verdict, result.verdict.outage

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    lines = [
        f"scenario {result.scenario}: {'PASSED' if result.passed else 'FAILED'}",
        f"  fault: {result.fault}",
        f"  leader: {o.leader_before} -> {o.leader_after} ({o.leader_changes} changes)",
        f"  write outage (RTO): {secs(o.write_gap if o.gap_end is not None else None)}"
        + (" (writes never came back)" if o.gap_end is None else ""),
        f"    Patroni promoted after {secs(o.promoted_after)}, HAProxy switched after "
        f"{secs(o.haproxy_after)}, client wrote again after {secs(o.client_after)}",
        f"  writes: {v.attempted} attempted, {v.acknowledged} acknowledged, {v.failed} failed, "
        f"{v.unknown} unknown ({len(v.ghosts)} of them committed: ghosts)",
        f"  lost acknowledged: {len(v.lost)}, unexpected: {len(v.unexpected)}, "
        f"split brain: {'yes' if v.split_brain else 'no'}, converged: {v.converged}",
    ]
    if scenario.expect.note:
        lines.append(f"  note: {scenario.expect.note}")
    lines += [f"  FAILURE: {failure}" for failure in result.failures]
    return "\n".join(lines)


def write_report(result: Result, directory: Path) -> tuple[Path, Path]:
    """result.json and timeline.png in the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "result.json"
    json_path.write_text(json.dumps(result.to_json(), indent=1, default=str))
    png_path = directory / "timeline.png"
    plot_timeline(result, png_path)
    return json_path, png_path


def plot_timeline(result: Result, path: Path) -> None:
    """Acknowledged writes, errors and write latency, the fault shaded, leader changes marked."""
    record, outage = result.record, result.verdict.outage
    end = max([a.ended for a in record.attempts] + [1.0])
    spans = (
        [timeline.Span(record.marks["fault"], record.marks.get("heal", end), "orange", 0.2)]
        if "fault" in record.marks
        else []
    )
    timeline.plot(
        (
            timeline.Event(a.ended, a.outcome == "ack", (a.ended - a.started) * 1000)
            for a in record.attempts
        ),
        path,
        title=f"{result.scenario}: {result.fault} (shaded); leader {outage.leader_before} -> "
        f"{outage.leader_after} (dashed); write outage {outage.write_gap:.1f} s",
        ok_label="acks/s",
        latency_quantile=50,
        spans=spans,
        marks=[at for at, _leader in leader_changes(record)],
        bin_seconds=0.5,
    )
