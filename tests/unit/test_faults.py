"""Faults against fakes: role resolution, the rules they write, and the backstop that heals."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.clients.faultproxy import FaultProxyClient
from harness.core.errors import ConfigError, HarnessError
from harness.core.polling import holds, poll
from harness.faults.controller import Faults
from harness.faults.model import AlreadyInjected, ToxicFault
from harness.lab.project import Lab
from harness.lab.topology import ETCD_MEMBERS, FAULTPROXY, NODES, PROXY_LINKS
from harness.stack.lifecycle import Stack
from tests.fakes import (
    FakeIptables,
    FakeProxyApi,
    FakeRuntime,
    cluster_json,
    container,
    patroni_transport,
)

SERVICES = (*NODES, *ETCD_MEMBERS, "haproxy", "pgbouncer", FAULTPROXY)


class Rig:
    """A stack of fakes: containers, iptables in the nodes, the proxy, Patroni's view."""

    def __init__(self, tmp_path: Path) -> None:
        self.iptables = FakeIptables()
        self.runtime = FakeRuntime.with_services(*SERVICES, on_exec=self.iptables)
        self.cluster = cluster_json(leader="pg2", sync="pg3", replica="pg1")
        self.api = FakeProxyApi([link.name for link in PROXY_LINKS])
        lab = Lab(root=tmp_path, settings={})
        stack = Stack(lab, runtime=self.runtime, http=patroni_transport(lambda: self.cluster))
        proxy = FaultProxyClient("http://proxy", transport=self.api.transport())
        self.faults = Faults(stack, proxy)

    def address(self, service: str) -> str:
        return self.runtime.services[service].addresses[0]


@pytest.fixture
def rig(tmp_path: Path) -> Rig:
    return Rig(tmp_path)


def test_roles_are_resolved_at_injection_from_patroni(rig: Rig) -> None:
    assert rig.faults.resolve("leader") == "pg2"
    assert rig.faults.resolve("sync-standby") == "pg3"
    assert rig.faults.resolve("replica") == "pg1"
    rig.cluster = cluster_json(leader="pg3", sync="pg1", replica="pg2")
    assert rig.faults.resolve("leader") == "pg3"


def test_bad_targets_say_what_would_do(rig: Rig) -> None:
    with pytest.raises(ConfigError, match="unknown node or role 'pg9'"):
        rig.faults.resolve("pg9")
    with pytest.raises(ConfigError, match="'haproxy' is not a database node"):
        rig.faults.isolate("haproxy")
    with pytest.raises(ConfigError, match="rules live in database nodes"):
        rig.faults.partition("haproxy", "pgbouncer")
    rig.cluster = {"scope": "gardenlab", "members": []}
    with pytest.raises(HarnessError, match="no member has the role leader"):
        rig.faults.resolve("leader")


def test_a_cut_from_etcd_drops_each_member_both_ways_in_our_chains(rig: Rig) -> None:
    fault = rig.faults.cut_from_etcd("leader")
    etcd = [rig.address(m) for m in ETCD_MEMBERS]
    with fault:
        rules = rig.iptables.rules("pg2")
        assert rules["GARDENLAB_IN"] == [f"-s {ip} -j DROP" for ip in etcd]
        assert rules["GARDENLAB_OUT"] == [f"-d {ip} -j DROP" for ip in etcd]
        assert rig.iptables.chains["pg2"]["INPUT"] == ["-j GARDENLAB_IN"]
    assert rig.iptables.rules("pg2") == {"GARDENLAB_IN": [], "GARDENLAB_OUT": []}
    assert fault.description == "cut pg2 from etcd"


def test_a_one_way_partition_drops_only_what_leaves_the_source(rig: Rig) -> None:
    with rig.faults.partition("pg1", "haproxy", one_way=True):
        assert rig.iptables.rules("pg1") == {
            "GARDENLAB_IN": [],
            "GARDENLAB_OUT": [f"-d {rig.address('haproxy')} -j DROP"],
        }
    with rig.faults.partition("haproxy", "pg1", one_way=True):
        assert rig.iptables.rules("pg1")["GARDENLAB_IN"] == [f"-s {rig.address('haproxy')} -j DROP"]


def test_cutting_peers_includes_the_proxy_that_carries_replication(rig: Rig) -> None:
    with rig.faults.cut_from_peers("replica"):
        dropped = rig.iptables.rules("pg1")["GARDENLAB_IN"]
    assert dropped == [f"-s {rig.address(s)} -j DROP" for s in ("pg2", "pg3", FAULTPROXY)]


def test_a_scaled_out_member_takes_faults_and_is_healed_like_the_others(tmp_path: Path) -> None:
    rig = Rig(tmp_path)
    with pytest.raises(ConfigError, match="pg4 is not running"):
        rig.faults.isolate("pg4")
    rig.runtime.services["pg4"] = container("pg4", address="172.18.0.40")
    with rig.faults.cut_from_peers("pg1"):
        dropped = rig.iptables.rules("pg1")["GARDENLAB_IN"]
    assert f"-s {rig.address('pg4')} -j DROP" in dropped
    rig.faults.isolate("pg4").apply()
    assert set(rig.faults.traces().rules) == {"pg4"}
    assert rig.faults.heal_all() == ["removed 2 iptables rules in pg4"]
    assert rig.faults.resolve_link("pg4") == "repl-pg4"


def test_a_toxic_goes_on_the_role_s_replication_link_and_comes_off(rig: Rig) -> None:
    fault = rig.faults.toxic("leader", "latency", {"latency": 100, "jitter": 0})
    with fault:
        toxics = rig.api.proxies["repl-pg2"]["toxics"]
        assert [t["name"] for t in toxics] == ["gardenlab-latency-downstream"]
        with pytest.raises(AlreadyInjected):
            rig.faults.toxic("pg2", "latency", {"latency": 5, "jitter": 0}).apply()
    assert rig.api.proxies["repl-pg2"]["toxics"] == []
    link = rig.faults.toxic("ro", "bandwidth", {"rate": 100}, "upstream").link
    assert link == "client-ro"


def test_the_import_service_s_database_link_is_its_own(rig: Rig) -> None:
    with rig.faults.link_down("csv-import"):
        assert not rig.api.proxies["import-rw"]["enabled"]
        assert all(p["enabled"] for n, p in rig.api.proxies.items() if n != "import-rw")
    assert rig.api.proxies["import-rw"]["enabled"]
    reset = rig.faults.toxic("csv-import", "reset_peer", {"timeout": 0}, "upstream")
    with reset:
        toxics = rig.api.proxies["import-rw"]["toxics"]
        assert [t["name"] for t in toxics] == ["gardenlab-reset_peer-upstream"]
    assert reset.description == "reset_peer on import-rw (upstream: timeout=0)"


def test_the_s3_repository_has_a_link_of_its_own(rig: Rig) -> None:
    with rig.faults.link_down("s3"):
        assert not rig.api.proxies["repo-s3"]["enabled"]
        assert all(p["enabled"] for n, p in rig.api.proxies.items() if n != "repo-s3")
    assert rig.faults.toxic("s3", "latency", {"latency": 500, "jitter": 0}).link == "repo-s3"


def test_a_container_fault_heals_to_running_whatever_it_did(rig: Rig) -> None:
    for action in ("kill", "pause", "stop"):
        with rig.faults.container_fault(action, "sync-standby"):
            assert not rig.runtime.services["pg3"].serving
        assert rig.runtime.services["pg3"].serving


def test_a_fault_failing_half_way_is_healed(rig: Rig) -> None:
    toxic = {"name": "t", "type": "latency", "stream": "downstream", "attributes": {}}
    fault = rig.faults.together(
        rig.faults.container_fault("pause", "pg1"), ToxicFault(rig.faults, "no-such-link", toxic)
    )
    with pytest.raises(HarnessError, match="fault proxy refused POST"):
        fault.apply()
    assert rig.runtime.services["pg1"].serving


def test_heal_all_reverses_every_kind_of_trace(rig: Rig) -> None:
    rig.faults.container_fault("pause", "pg1").apply()
    rig.faults.container_fault("kill", "etcd2").apply()
    rig.faults.isolate("pg3").apply()
    rig.faults.toxic("rw", "timeout", {"timeout": 0}).apply()
    rig.faults.link_down("pooler").apply()
    traces = rig.faults.traces()
    assert traces.paused == ["pg1"] and traces.stopped == ["etcd2"]
    assert set(traces.rules) == {"pg3"} and traces.disabled_links == ["client-pooler"]
    done = rig.faults.heal_all()
    assert done == [
        "unpaused pg1",
        "started etcd2",
        "removed 2 iptables rules in pg3",
        "reset the fault proxy (1 toxics, 1 links re-enabled)",
    ]
    assert not rig.faults.traces()
    assert rig.faults.heal_all() == []


def test_stages_follow_each_other_and_the_last_heals_with_the_fault(rig: Rig) -> None:
    slow = rig.faults.toxic("s3", "latency", {"latency": 1000, "jitter": 0})
    fault = rig.faults.stages((slow, 0.05), (rig.faults.link_down("s3"), 1))
    assert fault.description == (
        "latency on repo-s3 (downstream: latency=1000, jitter=0) for 0.05 s then link repo-s3 down"
    )
    with fault:
        assert [t["type"] for t in rig.api.proxies["repo-s3"]["toxics"]] == ["latency"]
        down = poll(lambda: not rig.api.proxies["repo-s3"]["enabled"], holds, timeout=5)
        assert down.held, "the second stage never came"
        assert rig.api.proxies["repo-s3"]["toxics"] == []  # the first stage healed
    assert rig.api.proxies["repo-s3"]["enabled"] and rig.api.proxies["repo-s3"]["toxics"] == []


def test_stages_healed_early_never_inject_the_next(rig: Rig) -> None:
    with rig.faults.stages(
        (rig.faults.link_down("s3"), 30), (rig.faults.link_down("csv-import"), 1)
    ):
        assert not rig.api.proxies["repo-s3"]["enabled"]
    assert all(p["enabled"] for p in rig.api.proxies.values())
