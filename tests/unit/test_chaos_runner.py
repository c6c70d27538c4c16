"""The chaos runner's promise, on fakes: whatever happens inside a scenario (a failing
fault, Ctrl-C in the middle of the hold), the fault is healed and the backstop runs."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from types import TracebackType

import pytest

from harness.chaos.catalog import CATALOG
from harness.chaos.runner import Expectation, Scenario, run
from harness.chaos.workload import Record, WorkloadTarget
from harness.clients.faultproxy import FaultProxyClient
from harness.faults.controller import Faults
from harness.faults.model import Fault
from harness.lab.project import Lab
from harness.lab.topology import ETCD_MEMBERS, NODES, PROXY_LINKS
from harness.stack.lifecycle import Stack
from harness.stack.readiness import OnRound
from tests.fakes import FakeProxyApi, FakeRuntime


class ReadyStack(Stack):
    """A stack whose readiness wait returns at once: the runner's control flow is under test."""

    def wait_ready(self, timeout: float, on_round: OnRound | None = None) -> float:
        return 0.0


class InterruptedWorkload:
    """Stands in for the writers; Ctrl-C arrives when the runner marks `interrupt_at`."""

    def __init__(self, interrupt_at: str) -> None:
        self.interrupt_at = interrupt_at
        self.record = Record()
        self.stopped = False

    def __enter__(self) -> InterruptedWorkload:
        return self

    def __exit__(
        self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stopped = True

    def mark(self, name: str) -> None:
        if name == self.interrupt_at:
            raise KeyboardInterrupt
        self.record.marks[name] = 0.0


class KillWithoutHeal(Fault):
    """A fault that forgets to heal: the backstop must."""

    description = "kill etcd1, heal nothing"

    def __init__(self, faults: Faults) -> None:
        self.faults = faults

    def inject(self) -> None:
        self.faults.act("kill", "etcd1")

    def heal(self) -> None:
        pass


def rig(tmp_path: Path) -> tuple[ReadyStack, Faults, FakeRuntime, FakeProxyApi]:
    runtime = FakeRuntime.with_services(*NODES, *ETCD_MEMBERS, "haproxy")
    api = FakeProxyApi([link.name for link in PROXY_LINKS])
    stack = ReadyStack(Lab(root=tmp_path, settings={"POSTGRES_PASSWORD": "x"}), runtime=runtime)
    faults = Faults(stack, FaultProxyClient("http://proxy", transport=api.transport()))
    return stack, faults, runtime, api


def scenario(fault: object) -> Scenario:
    return Scenario("test", "story", fault, hold=0, expect=Expectation(), steady=0)  # type: ignore[arg-type]


@pytest.mark.parametrize("interrupt_at", ["heal", "fault"])
def test_ctrl_c_during_a_scenario_heals_everything_and_stops_the_writers(
    tmp_path: Path, interrupt_at: str
) -> None:
    stack, faults, runtime, _ = rig(tmp_path)
    workload = InterruptedWorkload(interrupt_at)

    def paused_and_slowed(f: Faults) -> Fault:
        return f.together(
            f.container_fault("pause", "pg1"), f.toxic("pg2", "latency", {"latency": 100})
        )

    with pytest.raises(KeyboardInterrupt):
        run(stack, scenario(paused_and_slowed), faults=faults, workload=lambda t, w: workload)  # type: ignore[arg-type, return-value]
    assert workload.stopped
    assert runtime.services["pg1"].serving
    assert not faults.traces()


def test_the_backstop_heals_what_a_fault_left(tmp_path: Path) -> None:
    stack, faults, runtime, _ = rig(tmp_path)
    workload = InterruptedWorkload("heal")
    with pytest.raises(KeyboardInterrupt):
        run(stack, scenario(KillWithoutHeal), faults=faults, workload=lambda t, w: workload)  # type: ignore[arg-type, return-value]
    assert ("start", "etcd1") in runtime.actions
    assert runtime.services["etcd1"].serving


def test_the_workload_goes_where_the_scenario_says(tmp_path: Path) -> None:
    stack, faults, _, _ = rig(tmp_path)
    seen: list[WorkloadTarget] = []

    def capture(target: WorkloadTarget, writers: int) -> InterruptedWorkload:
        seen.append(target)
        return InterruptedWorkload("fault")

    with pytest.raises(KeyboardInterrupt):
        run(stack, replace(CATALOG["pgbouncer-restart"], steady=0), faults=faults, workload=capture)  # type: ignore[arg-type]
    assert f"port={stack.lab.ports['pooler']}" in seen[0].write_dsn
    assert f"port={stack.lab.ports['rw']}" in seen[0].setup_dsn


def test_the_ci_subset_is_tagged_on_the_scenarios() -> None:
    subset = {name for name, s in CATALOG.items() if s.ci}
    assert subset == {
        "import-link-cut",
        "leader-kill",
        "switchover",
        "etcd-quorum-loss",
        "replica-cut-from-primary",
        "planned-switchover-pooler",
        "planned-reinit",
    }


def test_an_archive_outage_must_hold_wal_back_and_then_drain_it() -> None:
    from harness.backup.repository import WalWaiting
    from harness.chaos.archive import archive_failures

    seg = "000000010000000000000007"
    held, empty = WalWaiting(2, 2 * 2**24, f"{seg} at t"), WalWaiting(0, 0, "")
    assert archive_failures(seg, held, empty, "000000010000000000000008") == []
    missed = archive_failures(seg, empty, empty, "000000010000000000000008")
    assert missed == ["no WAL waited in pg_wal during the fault: it never reached the archive"]
    stuck = archive_failures(seg, held, held, "000000010000000000000006")
    assert stuck[0].startswith("WAL did not drain within 120 s of the heal (WAL waiting in")
    assert stuck[1] == f"segment {seg} closed during the fault is not archived"
