"""Stack decisions that need no engine: port conflicts, stranded data, health."""

from __future__ import annotations

import socket
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.clients.docker import Volume
from harness.clients.haproxy import BackendServer, parse_stats_csv
from harness.clients.patroni import Cluster
from harness.core.errors import CommandError, ConfigError, PortInUseError, StateError
from harness.lab.presets import get_preset
from harness.lab.project import PUBLISHED_PORTS, Lab
from harness.lab.secrets import ensure_secrets, read_env_file, secrets_fingerprint
from harness.lab.topology import SUPABASE
from harness.stack import lifecycle
from harness.stack.lifecycle import SECRETS_LABEL, Stack, StackStatus, stop_order
from tests.fakes import FakeRuntime, container, free_ports


def volume(name: str, secrets_id: str) -> Volume:
    return Volume(name, {SECRETS_LABEL: secrets_id})


def quiet_stack(
    tmp_path: Path, settings: dict[str, str], volumes: list[Volume] | None = None
) -> Stack:
    """A stack on a fake runtime holding no containers and these volumes."""
    runtime = FakeRuntime(volume_list=volumes or [])
    return Stack(Lab(root=tmp_path, settings=settings), say=lambda _: None, runtime=runtime)


@contextmanager
def held_port() -> Iterator[int]:
    """A loopback port some other program listens on."""
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        yield holder.getsockname()[1]


def test_a_taken_port_is_named_with_the_variable_that_moves_it(tmp_path: Path) -> None:
    with held_port() as port:
        others = [p for p in PUBLISHED_PORTS if p.name != "stats"]
        free = {p.env_var: str(n) for p, n in zip(others, free_ports(len(others)), strict=True)}
        stack = quiet_stack(tmp_path, {**free, "GARDENLAB_STATS_PORT": str(port)})
        with pytest.raises(PortInUseError) as info:
            stack.check_ports()
    assert info.value.port == port
    assert "(stats)" in info.value.message and "GARDENLAB_STATS_PORT" in info.value.hint


def test_a_profile_port_is_checked_only_when_the_profile_starts(tmp_path: Path) -> None:
    with held_port() as port:
        others = [p for p in PUBLISHED_PORTS if p.name != "meta"]
        free = {p.env_var: str(n) for p, n in zip(others, free_ports(len(others)), strict=True)}
        stack = quiet_stack(tmp_path, {**free, "GARDENLAB_META_PORT": str(port)})
        stack.check_ports()
        with pytest.raises(PortInUseError, match="meta"):
            stack.check_ports([SUPABASE])


def test_data_without_its_passwords_is_not_overwritten(tmp_path: Path) -> None:
    stack = quiet_stack(tmp_path, {}, [volume("gardenlab_pg1", "abc")])
    with pytest.raises(StateError, match="new passwords would not open the old data"):
        stack.prepare(get_preset("fast"))
    assert not (tmp_path / ".env").exists()


def test_first_prepare_generates_secrets_and_renders(tmp_path: Path) -> None:
    settings = {"GARDENLAB_PROJECT": "other", "GARDENLAB_RW_PORT": "15000"}
    stack = quiet_stack(tmp_path, settings)
    stack.prepare(get_preset("normal"))
    assert stack.lab.secret("POSTGRES_PASSWORD")
    assert (stack.lab.project, stack.lab.ports["rw"]) == ("other", 15000)  # overlay kept
    rendered = tmp_path / "compose" / "rendered" / "other"
    assert (rendered / "haproxy.cfg").exists()
    assert "GARDENLAB_RW_PORT=15000" in (rendered / "rendered.env").read_text()


@pytest.mark.parametrize("label", ["unknown", "match"])
def test_data_made_with_these_secrets_or_unlabelled_is_accepted(tmp_path: Path, label: str) -> None:
    ensure_secrets(tmp_path / ".env")
    settings = read_env_file(tmp_path / ".env")
    secrets_id = secrets_fingerprint(settings) if label == "match" else label
    stack = quiet_stack(tmp_path, settings, [volume("gardenlab_pg1", secrets_id)])
    stack.prepare(get_preset("fast"))


def test_data_made_with_other_secrets_is_refused_before_anything_starts(tmp_path: Path) -> None:
    ensure_secrets(tmp_path / ".env")
    foreign = [volume("gardenlab_pg2", "0123456789abcdef")]
    stack = quiet_stack(tmp_path, read_env_file(tmp_path / ".env"), foreign)
    with pytest.raises(StateError, match="gardenlab_pg2 were initialised with other secrets"):
        stack.prepare(get_preset("fast"))
    assert not (tmp_path / "compose" / "rendered").exists()


def test_health_needs_haproxy_to_route_rw_to_the_leader_and_ro_to_every_replica(
    cluster_json: dict[str, Any], stats_csv: str
) -> None:
    cluster = Cluster.from_json(cluster_json)
    backends = parse_stats_csv(stats_csv)
    assert StackStatus({}, cluster, "", backends).healthy
    assert not StackStatus({}, cluster, "", []).healthy
    one_replica_down = [
        BackendServer(
            b.listener, b.server, "DOWN" if (b.listener, b.server) == ("ro", "pg2") else b.status
        )
        for b in backends
    ]
    status = StackStatus({}, cluster, "", one_replica_down)
    assert [f.name for f in status.findings if not f.passed] == [
        "HAProxy routes ro to every streaming replica"
    ]
    assert not StackStatus({}, None, "no Patroni", backends).healthy
    cluster_json["members"][0]["state"] = "starting"
    assert not StackStatus({}, Cluster.from_json(cluster_json), "", backends).healthy


def test_down_stops_clients_then_nodes_then_etcd() -> None:
    services = ["etcd1", "pg1", "faultproxy", "haproxy", "etcd2", "pg2", "pgbouncer"]
    tiers = stop_order(container(s) for s in services)
    assert [[c.service for c in tier] for tier in tiers] == [
        ["haproxy", "pgbouncer"],
        ["pg1", "pg2"],
        ["faultproxy"],
        ["etcd1"],
        ["etcd2"],
    ]


def test_down_thaws_then_stops_in_tiers_and_removes_everything(tmp_path: Path) -> None:
    runtime = FakeRuntime.with_services("etcd1", "pg1", "haproxy", network_list=["lab"])
    runtime.services["pg1"] = container("pg1", "paused")
    runtime.volume_list = [Volume("gardenlab_pg1")]
    stack = Stack(Lab(root=tmp_path, settings={}), say=lambda _: None, runtime=runtime)
    removed = stack.down(volumes=False)
    assert runtime.actions == [
        ("unpause", "pg1"),
        ("stop", "haproxy"),
        ("stop", "pg1"),
        ("stop", "etcd1"),
    ]
    assert removed["networks"] == ["lab"] and removed["volumes"] == []
    assert runtime.services == {} and "volumes" not in runtime.removed
    stack.down(volumes=True)
    assert runtime.removed["volumes"] == ["gardenlab_pg1"]


def test_restart_waits_for_patroni_to_notice_patched_settings(tmp_path: Path) -> None:
    """Patroni reports pending_restart only after its next loop: looking at once found none,
    and a new shared_buffers was patched but never applied."""
    from tests.fakes import cluster_json, patroni_transport

    looks = {"n": 0}
    restarted: list[str] = []

    def cluster() -> dict[str, Any]:
        looks["n"] += 1
        found = cluster_json()
        for m in found["members"]:
            m["pending_restart"] = looks["n"] >= 3  # noticed on the third look
        return found

    inner = patroni_transport(cluster)

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/restart":
            restarted.append(f"{request.url.port}")
        return inner.handle_request(request)

    settings = {"PATRONI_RESTAPI_PASSWORD": "x"}
    stack = Stack(
        Lab(root=tmp_path, settings=settings),
        say=lambda _: None,
        runtime=FakeRuntime(),
        http=httpx.MockTransport(handle),
    )
    assert stack.restart_pending() == []  # at once: nothing yet
    assert stack.restart_pending(settle=5) == ["pg2", "pg3", "pg1"]  # replicas, then the leader
    assert len(restarted) == 3


class RefusingRuntime(FakeRuntime):
    """The monitoring image's promtool refusing a rule, as it words it."""

    def run_once(
        self,
        image: str,
        command: Sequence[str],
        entrypoint: str,
        mounts: Sequence[tuple[Path, str]] = (),
    ) -> str:
        self.ran = (image, list(command), entrypoint, list(mounts))
        raise CommandError(
            ["docker", "run"],
            1,
            '  FAILED:\n/etc/prometheus/alerts.yml: 7:11: group "g", rule 2, "Bad": could '
            "not parse expression: 1:10: parse error: unclosed left parenthesis\n",
        )


def test_a_rule_that_does_not_parse_is_named_with_file_and_line_before_anything_starts(
    tmp_path: Path,
) -> None:
    runtime = RefusingRuntime()
    stack = Stack(Lab(root=tmp_path, settings={}), say=lambda _: None, runtime=runtime)
    with pytest.raises(ConfigError) as refused:
        stack.check_monitoring()
    rendered = stack.lab.rendered_dir
    assert refused.value.message == (
        f'{rendered}/alerts.yml:7: group "g", rule 2, "Bad": could not parse expression: 1:10: '
        "parse error: unclosed left parenthesis"
    )
    assert "harness/config/monitoring.py" in refused.value.hint
    assert runtime.ran[1:] == (
        ["-c", "exec promtool check config /etc/prometheus/prometheus.yml 2>&1"],
        "sh",
        [(rendered.resolve(), "/etc/prometheus")],
    )
    assert runtime.actions == []  # nothing started


def test_a_blind_rule_is_refused_before_promtool_and_anything_else_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    runtime = RefusingRuntime()
    stack = Stack(Lab(root=tmp_path, settings={}), say=lambda _: None, runtime=runtime)
    found = "x/alerts.yml:9: rule LeaderGone reads patroni_master, which no target exports"
    monkeypatch.setattr(lifecycle, "blind_rules", lambda where: [found])
    with pytest.raises(ConfigError, match="patroni_master, which no target exports"):
        stack.check_monitoring()
    assert not hasattr(runtime, "ran") and runtime.actions == []
