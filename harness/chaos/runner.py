"""Run a scenario: steady load, fault, bounded hold, heal, recovery, then the checks.

The fault always heals, and `heal_all()` runs afterwards whatever happened (Ctrl-C
included), so a failed or interrupted scenario leaves the lab as it found it.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.chaos.alerts import (
    NEVER_FIRE,
    AlertExpectation,
    AlertWatch,
    Firing,
    Notified,
    Seen,
    alert_failures,
    lab_firing,
    lab_notified,
)
from harness.chaos.imports import ImportAlongside, ImportPlan
from harness.chaos.invariants import Verdict, client_errors, judge
from harness.chaos.workload import TABLE, Record, Workload, WorkloadTarget
from harness.core.progress import Say
from harness.data.verify import verify
from harness.faults.controller import Faults
from harness.faults.model import Fault
from harness.lab.topology import ALERT_LOG, NODES, EndpointName
from harness.stack.lifecycle import Stack

RECOVERY_TIMEOUT = 180.0


# failure: something breaks; planned: maintenance done on purpose
ScenarioGroup = Literal["failure", "planned"]


@dataclass(frozen=True)
class Expectation:
    """What a scenario promises; `failover` None means either outcome is acceptable."""

    failover: bool | None = None
    max_write_gap: float | None = None  # seconds of client-visible write outage
    max_client_errors: int | None = None  # failed or broken writes from the fault on
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
    endpoint: EndpointName = "rw"
    ci: bool = False  # in the subset `make test` runs: short, and telling
    imports: ImportPlan | None = None  # a CSV import runs through the fault (needs a seed)
    group: ScenarioGroup = "failure"
    alerts: tuple[AlertExpectation, ...] = ()  # must fire (and resolve) within budgets
    never: tuple[str, ...] = NEVER_FIRE  # alerts that must not fire at all


@dataclass
class Result:
    scenario: str
    fault: str
    verdict: Verdict
    record: Record
    note: str = ""  # what the platform does here, in words, from the scenario
    failures: list[str] = field(default_factory=list)
    alerts: list[Seen] = field(default_factory=list)  # what fired, times from the watch's start
    alert_marks: dict[str, float] = field(default_factory=dict)  # fault, heal on that clock

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
            "alerts": [a.to_json() for a in self.alerts],
            "alert_marks": self.alert_marks,
        }


def budget_failures(scenario: Scenario, verdict: Verdict, errors: int = 0) -> list[str]:
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
    if expect.max_client_errors is not None and errors > expect.max_client_errors:
        failures.append(f"{errors} client errors exceed the budget of {expect.max_client_errors}")
    return failures


WorkloadFactory = Callable[[WorkloadTarget, int], Workload]


def standard_workload(target: WorkloadTarget, writers: int) -> Workload:
    return Workload(target, writers=writers)


def run(
    stack: Stack,
    scenario: Scenario,
    *,
    writers: int = 4,
    say: Say = print,
    faults: Faults | None = None,
    workload: WorkloadFactory = standard_workload,
    firing: Firing | None = None,
    notified: Notified | None = None,
) -> Result:
    faults = faults or Faults(stack)
    stack.wait_ready(RECOVERY_TIMEOUT)
    description = ""
    target = WorkloadTarget.of_lab(stack.lab, scenario.endpoint)
    alongside = ImportAlongside(stack, scenario.imports, say) if scenario.imports else None
    watch = AlertWatch(
        firing or lab_firing(stack.lab.url("alertmanager")),
        notified or lab_notified(stack.lab.url(ALERT_LOG)),
    )
    with watch:
        try:
            with workload(target, writers) as load:
                say(f"{scenario.name}: steady state for {scenario.steady:.0f} s")
                time.sleep(scenario.steady)
                if alongside:
                    alongside.start(seed=int(time.time()))
                fault = scenario.fault(faults)
                description = fault.description
                say(f"{scenario.name}: {description}, held {scenario.hold:.0f} s")
                if alongside:
                    alongside.mark("fault")
                load.mark("fault")
                watch.mark("fault")
                with fault:
                    time.sleep(scenario.hold)
                    if alongside:
                        alongside.mark("heal")
                    load.mark("heal")
                    watch.mark("heal")
                say(f"{scenario.name}: healed; waiting for the cluster")
                stack.wait_ready(RECOVERY_TIMEOUT)
                load.mark("ready")
                time.sleep(scenario.recover)
        finally:
            faults.heal_all()
        stack.wait_ready(RECOVERY_TIMEOUT)
        resolving = [e for e in scenario.alerts if e.resolve_within is not None]
        if resolving:
            say(f"{scenario.name}: waiting for {', '.join(e.name for e in resolving)} to resolve")
            budget = max(e.resolve_within or 0 for e in resolving)
            watch.wait_resolved(
                {e.name for e in resolving}, budget - (watch.now() - watch.marks["heal"]) + 2
            )
    cluster = stack.status().cluster
    leader = cluster.leader.name if cluster and cluster.leader else ""
    members = [m.name for m in cluster.members] if cluster else list(NODES)
    checks = verify(stack.node_sql, leader, tables=(TABLE,), nodes=members)
    differing = [c.table for c in checks if not c.passed]
    verdict = judge(
        load.record, load.table.ids_on(target.setup_dsn), load.record.marks["fault"], differing
    )
    result = Result(scenario.name, description, verdict, load.record, scenario.expect.note)
    errors = client_errors(load.record, load.record.marks["fault"])
    result.failures = budget_failures(scenario, verdict, errors)
    if alongside:
        result.failures += alongside.failures()
    result.failures += alert_failures(watch, scenario.alerts, scenario.never)
    result.alerts, result.alert_marks = watch.alerts(), dict(watch.marks)
    return result
