"""Members joining and leaving against fakes: the steps in order, a clean leave (no key, no
slot, no container, no volume), and every refusal leaving the cluster untouched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from harness import cli
from harness.cli.app import App
from harness.clients.docker import Volume
from harness.clients.faultproxy import FaultProxyClient
from harness.config.monitoring import LAB_TARGETS, expected_targets
from harness.core.errors import ConfigError, StateError
from harness.core.polling import Clock
from harness.core.progress import Say
from harness.faults.controller import Faults
from harness.lab.project import Lab
from harness.lab.topology import ETCD_MEMBERS, NODES, SCALE_PROFILE, EndpointName, postgres_exporter
from harness.maintenance.planned import Planned
from harness.maintenance.scale import Scale, ScaleWork, plan
from harness.stack.lifecycle import Stack
from tests.fakes import (
    FakeCompose,
    FakePatroni,
    FakePooler,
    FakeProxyApi,
    FakeRuntime,
    cluster_json,
    container,
)
from tests.unit.test_maintenance import SETTINGS, FakeClock

RETAIN = "30min"
STATIC_TARGETS = sum(len(hosts) for _, hosts in LAB_TARGETS.jobs)


class Rig:
    """Patroni, Docker, Compose and HAProxy's ro pool playing along: a started node streams
    and is routed; a deleted member key takes it out of Patroni; the leader drops a departed
    member's slot only while member_slots_ttl is 0, as Patroni 4 does."""

    def __init__(self, tmp_path: Path, extra: Sequence[str] = ()) -> None:
        self.patroni = FakePatroni(
            cluster_json(leader="pg1", sync="pg2", replica="pg3"),
            {"synchronous_mode": True, "member_slots_ttl": RETAIN},
        )
        self.slots = {"pg2", "pg3"}
        self.pool = ["pg2", "pg3"]
        self.runtime = FakeRuntime.with_services(*NODES, *ETCD_MEMBERS, "haproxy", "pgbouncer")
        self.runtime.on_exec = self.on_exec
        self.compose = FakeCompose(on_up=self.started)
        self.lab = Lab(root=tmp_path, settings=SETTINGS)
        self.stack = Stack(
            self.lab,
            runtime=self.runtime,
            compose=self.compose_for,
            http=self.patroni.transport(),
        )
        self.pooler = FakePooler()
        self.clock = FakeClock()
        self.planned = Planned(
            self.stack,
            faults=Faults(
                self.stack, FaultProxyClient("http://p", transport=FakeProxyApi([]).transport())
            ),
            pooler=self.pooler,
            routing=lambda: ["pg1"],
            writable=self.writable,
            clock=Clock(self.clock.now, self.clock.sleep),
        )
        self.scale = Scale(self.planned, read_pool=lambda: list(self.pool))
        self.started([*extra, *(postgres_exporter(n) for n in extra)])
        self.runtime.volume_list += [Volume(f"gardenlab_{n}") for n in extra]

    def compose_for(self, lab: Lab, profiles: Sequence[str]) -> FakeCompose:
        self.compose.profiles = tuple(profiles)
        return self.compose

    def writable(self, endpoint: EndpointName) -> bool:
        return True

    def started(self, services: list[str]) -> None:
        for name in services:
            self.runtime.services[name] = container(name)
            if name.endswith("-exporter"):
                continue
            self.patroni.cluster["members"].append(
                {"name": name, "role": "replica", "state": "streaming", "host": name, "lag": 0}
            )
            self.slots.add(name)
            self.pool.append(name)

    def on_exec(self, service: str, command: list[str]) -> str:
        if command[:2] == ["etcdctl", "del"]:
            name = command[2].rsplit("/", 1)[-1]
            self.patroni.cluster["members"] = [
                m for m in self.patroni.cluster["members"] if m["name"] != name
            ]
            if name in self.pool:
                self.pool.remove(name)
            return "1"
        if "pg_replication_slots" in command[-1]:
            members = {m["name"] for m in self.patroni.cluster["members"]}
            if self.patroni.config.get("member_slots_ttl") == 0:
                self.slots &= members
            return "\n".join(sorted(self.slots))
        return ""

    def members(self) -> list[str]:
        return [m["name"] for m in self.patroni.cluster["members"]]

    def changes(self) -> list[Any]:
        return [
            *(r for r in self.patroni.requests if r[0] != "GET"),
            *self.compose.ups,
            *self.runtime.actions,
            *self.runtime.removed.items(),
        ]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_scaling_out_starts_pg4_and_pg5_and_waits_for_them_in_the_ro_pool(rig: Rig) -> None:
    result = rig.scale.scale(5)
    assert rig.compose.ups == [((SCALE_PROFILE,), ["pg4", "pg5", "pg4-exporter", "pg5-exporter"])]
    # Prometheus now scrapes their Patroni and their exporter, and readiness expects them
    assert expected_targets(rig.lab.rendered_dir) == STATIC_TARGETS + 4
    assert set(result.joined) == {"pg4", "pg5"} and not result.left
    assert result.before == ["pg1", "pg2", "pg3"]
    assert result.after == ["pg1", "pg2", "pg3", "pg4", "pg5"]
    assert rig.patroni.patches == []  # joining changes no setting


def test_scaling_out_clears_a_volume_left_by_an_interrupted_leave(rig: Rig) -> None:
    rig.runtime.volume_list.append(Volume("gardenlab_pg4"))
    rig.scale.scale(4)
    assert rig.runtime.removed == {"volumes": ["gardenlab_pg4"]}
    assert rig.compose.ups == [((SCALE_PROFILE,), ["pg4", "pg4-exporter"])]


def test_scaling_in_leaves_no_key_no_slot_no_container_no_volume(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra=("pg4", "pg5"))
    result = rig.scale.scale(3)
    assert list(result.left) == ["pg5", "pg4"]  # the last to join leaves first
    assert rig.members() == ["pg1", "pg2", "pg3"] and result.after == ["pg1", "pg2", "pg3"]
    assert rig.slots == {"pg2", "pg3"}
    assert rig.runtime.actions == [
        ("stop", "pg5"),
        ("stop", "pg5-exporter"),
        ("stop", "pg4"),
        ("stop", "pg4-exporter"),
    ]
    assert set(rig.runtime.services).isdisjoint({"pg4", "pg5", "pg4-exporter", "pg5-exporter"})
    assert rig.runtime.removed["containers"] == [
        "gardenlab-pg5-1",
        "gardenlab-pg5-exporter-1",
        "gardenlab-pg4-1",
        "gardenlab-pg4-exporter-1",
    ]
    assert expected_targets(rig.lab.rendered_dir) == STATIC_TARGETS  # readiness after scale-in
    assert rig.runtime.removed["volumes"] == ["gardenlab_pg5", "gardenlab_pg4"]
    deleted = [c for _, c in rig.runtime.executed if c[:2] == ["etcdctl", "del"]]
    assert deleted == [
        ["etcdctl", "del", "/service/gardenlab/members/pg5"],
        ["etcdctl", "del", "/service/gardenlab/members/pg4"],
    ]
    # slots of departed members are dropped only for the moment of each leave
    assert rig.patroni.patches == [{"member_slots_ttl": 0}, {"member_slots_ttl": RETAIN}] * 2
    assert rig.patroni.config["member_slots_ttl"] == RETAIN


def test_a_member_already_at_the_asked_size_changes_nothing(rig: Rig) -> None:
    result = rig.scale.scale(3)
    assert not result.changed and rig.changes() == []


@pytest.mark.parametrize("total", [2, 6, 0])
def test_a_size_out_of_range_is_refused_before_the_cluster_is_asked(rig: Rig, total: int) -> None:
    with pytest.raises(ConfigError, match=f"--replicas {total} is out of range") as raised:
        rig.scale.scale(total)
    assert raised.value.hint
    assert rig.patroni.requests == [] and rig.changes() == []


def test_scaling_while_a_switchover_runs_is_refused(rig: Rig) -> None:
    rig.pooler.is_paused = True  # `harness switchover` holds PgBouncer paused
    with pytest.raises(StateError, match="a switchover or other planned work is under way"):
        rig.scale.scale(5)
    rig.pooler.is_paused = False
    rig.patroni.cluster["scheduled_switchover"] = {"at": "2026-12-02T21:00:00+00:00"}
    with pytest.raises(StateError, match="a switchover is scheduled"):
        rig.scale.scale(5)
    del rig.patroni.cluster["scheduled_switchover"]
    rig.patroni.member("pg1")["state"] = "stopping"  # the demotion of a switchover under way
    with pytest.raises(StateError, match="pg1 is stopping"):
        rig.scale.scale(5)
    assert rig.changes() == []


def test_a_cluster_with_a_member_down_is_not_scaled(rig: Rig) -> None:
    rig.patroni.member("pg3")["state"] = "stopped"
    with pytest.raises(StateError, match="the cluster is not whole: pg3 is stopped"):
        rig.scale.scale(4)
    assert rig.changes() == []


def test_a_leaving_member_that_leads_is_refused(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra=("pg4",))
    rig.patroni.member("pg1")["role"], rig.patroni.member("pg4")["role"] = "replica", "leader"
    rig.patroni.member("pg1")["state"], rig.patroni.member("pg4")["state"] = "streaming", "running"
    with pytest.raises(StateError, match="pg4 leads and would leave") as raised:
        rig.scale.scale(3)
    assert "harness switchover --to" in raised.value.hint
    assert rig.changes() == []


def test_plan_adds_in_order_and_removes_the_last_first() -> None:
    assert plan(["pg1", "pg2", "pg3"], 4) == (["pg4"], [])
    assert plan(["pg1", "pg2", "pg3", "pg4", "pg5"], 4) == ([], ["pg5"])
    assert plan(["pg1", "pg2", "pg3", "pg5"], 4) == (["pg4"], ["pg5"])


def test_the_cli_refuses_a_bad_size_in_one_message_with_a_hint(rig: Rig) -> None:
    def stack(lab: Lab, say: Say) -> Stack:
        return rig.stack

    app = App(stack_factory=stack, lab_factory=lambda: rig.lab)
    result = CliRunner().invoke(cli.cli, ["scale", "--replicas", "6"], obj=app)
    assert isinstance(result.exception, ConfigError)
    assert "out of range" in result.exception.message and result.exception.hint
    assert rig.changes() == []


def test_the_scenario_step_scales_out_and_its_heal_back_in(rig: Rig) -> None:
    with ScaleWork(rig.scale, 5, 3):
        assert rig.members() == ["pg1", "pg2", "pg3", "pg4", "pg5"]
    assert rig.members() == ["pg1", "pg2", "pg3"]
    assert rig.slots == {"pg2", "pg3"}


def test_a_container_without_its_member_is_refused_unless_it_leaves(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra=("pg4",))
    rig.patroni.cluster["members"] = [
        m for m in rig.patroni.cluster["members"] if m["name"] != "pg4"
    ]
    with pytest.raises(StateError, match="pg4 has a container but is no member"):
        rig.scale.scale(5)
    assert rig.changes() == []
    assert rig.scale.scale(3).left  # leaving is how it is cleared
    assert "pg4" not in rig.runtime.services


def test_the_scenario_heal_waits_for_other_work_to_settle(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra=("pg4", "pg5"))
    rig.patroni.member("pg3")["state"] = "restarting"

    def settling(seconds: float) -> None:
        rig.clock.sleep(seconds)
        if rig.clock.t >= 3:
            rig.patroni.member("pg3")["state"] = "streaming"

    rig.scale.clock = rig.planned.clock = Clock(rig.clock.now, settling)
    with pytest.raises(StateError, match="pg3 is restarting"):
        rig.scale.scale(3)  # a command refuses at once
    assert rig.changes() == []
    ScaleWork(rig.scale, 5, 3).heal()
    assert rig.members() == ["pg1", "pg2", "pg3"] and rig.clock.t >= 3


def test_a_member_that_leaves_may_be_in_any_state(tmp_path: Path) -> None:
    rig = Rig(tmp_path, extra=("pg4", "pg5"))
    rig.patroni.member("pg5")["state"] = "creating replica"  # a join cut short
    rig.patroni.member("pg4")["state"] = "crashed"
    with pytest.raises(StateError, match="pg4 is crashed"):
        rig.scale.scale(4)  # pg4 would stay
    assert list(rig.scale.scale(3).left) == ["pg5", "pg4"]
    assert rig.members() == ["pg1", "pg2", "pg3"]
