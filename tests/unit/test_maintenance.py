"""Planned work against fakes: refusals leave everything untouched, PgBouncer is resumed
whatever happens once it was paused, and the steps come in the promised order."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness import cli
from harness.cli.app import App
from harness.clients.faultproxy import FaultProxyClient
from harness.core.errors import ConfigError, HarnessError, PatroniUnavailable, StateError
from harness.core.polling import Clock
from harness.core.progress import Say
from harness.faults.controller import Faults
from harness.lab.project import Lab
from harness.lab.topology import ETCD_MEMBERS, NODES, EndpointName
from harness.maintenance.planned import Planned, RollingRestartWork
from harness.stack.lifecycle import Stack
from tests.fakes import FakePatroni, FakePooler, FakeProxyApi, FakeRuntime, cluster_json

SETTINGS = {"POSTGRES_PASSWORD": "x", "PATRONI_RESTAPI_PASSWORD": "y"}


class FakeClock:
    """Time passes only when someone sleeps."""

    def __init__(self) -> None:
        self.t = 0.0

    def now(self) -> float:
        return self.t

    def sleep(self, seconds: float) -> None:
        self.t += seconds


class Rig:
    def __init__(self, tmp_path: Path) -> None:
        self.patroni = FakePatroni(cluster_json(leader="pg1", sync="pg2", replica="pg3"))
        self.pooler = FakePooler()
        self.runtime = FakeRuntime.with_services(*NODES, *ETCD_MEMBERS, "haproxy", "pgbouncer")
        self.lab = Lab(root=tmp_path, settings=SETTINGS)
        self.stack = Stack(self.lab, runtime=self.runtime, http=self.patroni.transport())
        proxy = FaultProxyClient("http://proxy", transport=FakeProxyApi([]).transport())
        self.faults = Faults(self.stack, proxy)
        self.clock = FakeClock()
        self.events: list[str] = []
        self.route_to_leader = True
        self.interrupt_on_route = False
        self.planned = Planned(
            self.stack,
            faults=self.faults,
            pooler=self.pooler,
            routing=self.routing,
            writable=self.writable,
            clock=Clock(self.clock.now, self.clock.sleep),
        )

    def routing(self) -> list[str]:
        if self.interrupt_on_route:
            raise KeyboardInterrupt
        leader = next(m["name"] for m in self.patroni.cluster["members"] if m["role"] == "leader")
        return [leader] if self.route_to_leader else []

    def writable(self, endpoint: EndpointName) -> bool:
        self.events.append(f"writable {endpoint} paused={self.pooler.is_paused}")
        return True

    def changes(self) -> list[tuple[str, str]]:
        return [r for r in self.patroni.requests if r[0] != "GET"]

    def members(self) -> list[dict[str, Any]]:
        return list(self.patroni.cluster["members"])


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_a_switchover_pauses_switches_waits_for_routing_then_resumes(rig: Rig) -> None:
    result = rig.planned.switchover()
    assert (result.leader, result.candidate) == ("pg1", "pg2")
    assert rig.pooler.calls == ["pause", "resume"]
    assert rig.changes() == [("POST", "/switchover")]
    # rw was proven writable while paused, the pooler path only after the resume
    assert rig.events == ["writable rw paused=True", "writable pooler paused=False"]
    assert rig.patroni.member("pg2")["role"] == "leader"


@pytest.mark.parametrize(
    ("to", "error", "says"),
    [
        ("pg9", ConfigError, "'pg9' is not a member of the cluster"),
        ("pg1", ConfigError, "pg1 is the leader already"),
        ("pg3", ConfigError, "pg3 is an asynchronous replica"),
    ],
)
def test_a_bad_target_is_refused_before_anything_changes(
    rig: Rig, to: str, error: type[HarnessError], says: str
) -> None:
    with pytest.raises(error, match=says) as raised:
        rig.planned.switchover(to)
    assert raised.value.hint
    assert rig.pooler.calls == [] and rig.changes() == []


def test_an_asynchronous_replica_is_a_target_when_replication_is_asynchronous(rig: Rig) -> None:
    rig.patroni.config = {"synchronous_mode": False}
    assert rig.planned.switchover("pg3").candidate == "pg3"


def test_a_replica_that_does_not_stream_is_not_a_healthy_target(rig: Rig) -> None:
    rig.patroni.config = {"synchronous_mode": False}
    rig.patroni.member("pg3")["state"] = "stopped"
    with pytest.raises(StateError, match="pg3 is not a healthy replica"):
        rig.planned.switchover("pg3")
    assert rig.pooler.calls == [] and rig.changes() == []


def test_work_in_progress_is_refused(rig: Rig) -> None:
    rig.patroni.cluster["scheduled_switchover"] = {"at": "2026-12-02T18:00:00+00:00"}
    with pytest.raises(StateError, match="a switchover is scheduled"):
        rig.planned.switchover()
    del rig.patroni.cluster["scheduled_switchover"]
    rig.patroni.member("pg2")["state"] = "starting"
    with pytest.raises(StateError, match="pg2 is starting"):
        rig.planned.switchover()
    rig.patroni.member("pg2")["state"] = "streaming"
    rig.pooler.is_paused = True
    with pytest.raises(StateError, match="PgBouncer is paused already"):
        rig.planned.switchover()
    assert rig.pooler.calls == [] and rig.changes() == []


def test_patroni_refusing_after_the_pause_still_resumes(rig: Rig) -> None:
    rig.patroni.refuse_switchover = "candidate name does not match with sync_standby"
    with pytest.raises(PatroniUnavailable, match="HTTP 412"):
        rig.planned.switchover()
    assert rig.pooler.calls == ["pause", "resume"]


def test_ctrl_c_while_waiting_for_routing_still_resumes(rig: Rig) -> None:
    rig.interrupt_on_route = True
    with pytest.raises(KeyboardInterrupt):
        rig.planned.switchover()
    assert rig.pooler.calls == ["pause", "resume"] and not rig.pooler.is_paused


def test_routing_that_never_follows_times_out_and_resumes(rig: Rig) -> None:
    rig.route_to_leader = False
    with pytest.raises(HarnessError, match="timed out after 5 s waiting for HAProxy"):
        rig.planned.switchover(timeout=5)
    assert rig.pooler.calls == ["pause", "resume"]
    assert rig.clock.t >= 5


def test_a_pause_that_fails_changes_nothing(rig: Rig) -> None:
    rig.pooler.refuse_pause = StateError("PgBouncer could not pause within 10 s")
    with pytest.raises(StateError, match="could not pause"):
        rig.planned.switchover()
    assert rig.pooler.calls == ["pause"] and rig.changes() == []


def test_a_rolling_restart_with_nothing_pending_says_so_and_does_nothing(rig: Rig) -> None:
    with pytest.raises(StateError, match="no member has a restart pending"):
        rig.planned.rolling_restart()
    assert rig.changes() == [] and rig.pooler.calls == []


def test_a_rolling_restart_goes_replicas_first_then_moves_the_leader(rig: Rig) -> None:
    for member in rig.members():
        member["pending_restart"] = True
    result = rig.planned.rolling_restart()
    assert result.restarted == ["pg2", "pg3", "pg1"]
    assert result.switchover is not None and result.switchover.candidate == "pg2"
    assert rig.changes() == [("POST", "/restart"), ("POST", "/restart"), ("POST", "/switchover")]
    assert rig.pooler.calls == ["pause", "resume"]  # only the leader's move pauses
    assert rig.patroni.started == {"pg2": 1, "pg3": 1}  # the demotion restarted pg1


def test_a_rolling_restart_of_replicas_only_leaves_the_leader_and_pgbouncer(rig: Rig) -> None:
    rig.patroni.member("pg3")["pending_restart"] = True
    result = rig.planned.rolling_restart()
    assert result.restarted == ["pg3"] and result.switchover is None
    assert rig.pooler.calls == []


def test_reinit_rebuilds_a_replica_and_refuses_the_leader(rig: Rig) -> None:
    with pytest.raises(ConfigError, match="pg1 is the leader"):
        rig.planned.reinit("pg1")
    with pytest.raises(ConfigError, match="'pg7' is not a member"):
        rig.planned.reinit("pg7")
    assert rig.changes() == []
    rig.planned.reinit("pg3")
    assert rig.changes() == [("POST", "/reinitialize")]
    assert rig.pooler.calls == []


def test_the_cli_refuses_a_bad_target_in_one_message_with_a_hint(rig: Rig) -> None:
    def stack(lab: Lab, say: Say) -> Stack:
        return rig.stack

    app = App(stack_factory=stack, lab_factory=lambda: rig.lab)
    result = CliRunner().invoke(cli.cli, ["switchover", "--to", "pg3"], obj=app)
    assert isinstance(result.exception, ConfigError)
    assert "asynchronous replica" in result.exception.message and result.exception.hint
    assert rig.changes() == []


def test_restart_without_rolling_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli.cli, ["restart"])
    assert result.exit_code == 2 and "--rolling" in result.output


def test_the_rolling_restart_scenario_rolls_a_setting_out_and_back(rig: Rig) -> None:
    rig.patroni.config["postgresql"] = {"parameters": {"shared_buffers": "64MB"}}
    work = RollingRestartWork(rig.planned, "shared_buffers", "80MB")
    work.inject()
    assert rig.patroni.config["postgresql"]["parameters"]["shared_buffers"] == "80MB"
    assert not any(m.get("pending_restart") for m in rig.members())
    assert rig.pooler.calls == ["pause", "resume"]  # the leader moved once
    work.heal()
    assert rig.patroni.config["postgresql"]["parameters"]["shared_buffers"] == "64MB"
    assert not any(m.get("pending_restart") for m in rig.members())
    assert rig.pooler.calls == ["pause", "resume"] * 2
    work.heal()  # healed already: nothing more
    assert len(rig.patroni.patches) == 2


def test_a_rolling_restart_scenario_that_never_changed_anything_heals_nothing(rig: Rig) -> None:
    RollingRestartWork(rig.planned, "shared_buffers", "80MB").heal()
    assert rig.changes() == []
