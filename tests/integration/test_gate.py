"""The cutover gate against the real stack, through an inventory that points at its
published ports: go with load and a switchover; no-go, with no load, for targets it
cannot verify as this healthy Patroni cluster."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.backup.repository import take_backup
from harness.config.inventory import load_inventory
from harness.data.scales import TABLES
from harness.data.verify import verify
from harness.load.plan import LoadPlan
from harness.promotion.gate import gate
from harness.stack.lifecycle import Stack
from tests.integration.conftest import eventually
from tests.realstack import seed_small

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
QUICK = LoadPlan(users=10, spawn_rate=10, duration=15)


def target(
    stack: Stack,
    tmp_path: Path,
    names: tuple[str, ...] = ("pg1", "pg2", "pg3"),
    patroni_ports: list[int] | None = None,
) -> Path:
    ports = stack.lab.ports
    rest = patroni_ports or [ports[node] for node in ("pg1", "pg2", "pg3")]
    hosts = "\n".join(
        f"  - {{name: {n}, address: 10.99.0.1{i}, roles: [database, etcd]}}"
        for i, n in enumerate(names, start=1)
    )
    path = tmp_path / "target.yml"
    path.write_text(f"""\
preset: fast
network: 10.99.0.0/24
hosts:
{hosts}
  - {{name: lb, address: 10.99.0.21, roles: [haproxy, pgbouncer]}}
endpoints:
  rw: 127.0.0.1:{ports["rw"]}
  ro: 127.0.0.1:{ports["ro"]}
  pooler: 127.0.0.1:{ports["pooler"]}
  patroni: [{", ".join(f"127.0.0.1:{p}" for p in rest)}]
tls: {{source_dir: {stack.lab.tls.directory}, ca_file: /etc/gardenlab/tls/ca.crt,
      cert_file: /etc/gardenlab/tls/tls.crt,
      key_file: /etc/gardenlab/tls/tls.key, client_ca_file: {stack.lab.tls.ca_file}}}
backups:
  info_command: docker exec -u postgres {stack.container(stack.leader()).name} pgbackrest --stanza=gardenlab info --output=json
""")  # noqa: E501
    return path


def caught_up(stack: Stack, seconds: float = 60) -> None:
    def streaming_without_lag() -> bool:
        with stack.patroni() as patroni:
            members = patroni.cluster().members
        return all(m.is_leader or (m.state == "streaming" and not m.lag) for m in members)

    eventually(streaming_without_lag, seconds, "replicas caught up")


def test_the_lab_passes_the_gate_with_load_and_a_switchover(stack: Stack, tmp_path: Path) -> None:
    seed_small(stack, reset=False)
    take_backup(stack, "full")
    caught_up(stack)  # the async replica may still replay the seed: the gate would say so
    # ... and Patroni's lag is what a replica received: the load's samples, read on the ro
    # port, need what it replayed (verify waits for that, up to its deadline)
    verify(stack.node_sql, stack.leader(), tables=TABLES)
    report = gate(
        load_inventory(target(stack, tmp_path)),
        stack.lab.settings,
        QUICK,
        tmp_path / "out",
        allow_disruptive=True,
    )
    assert report.passed, [c for c in report.checks if c.passed is False]
    assert report.load is not None and report.switchover_outage is not None
    assert report.switchover_outage > 0  # measured; its figure is in the report, not a timed assert
    assert "GO" in (tmp_path / "out" / "gate.md").read_text()
    stack.wait_ready(120)


def test_a_target_it_cannot_reach_is_no_go_and_gets_no_load(stack: Stack, tmp_path: Path) -> None:
    report = gate(
        load_inventory(target(stack, tmp_path, patroni_ports=[1, 2, 3])),
        stack.lab.settings,
        QUICK,
        tmp_path / "out",
        allow_disruptive=True,
    )
    assert not report.passed and report.load is None and report.switchover_outage is None
    first = report.checks[0]
    assert first.passed is False and "no Patroni REST endpoint" in first.detail


def test_another_clusters_inventory_is_no_go_and_gets_no_load(stack: Stack, tmp_path: Path) -> None:
    path = target(stack, tmp_path, names=("db1", "db2", "db3"))
    report = gate(
        load_inventory(path), stack.lab.settings, QUICK, tmp_path / "out", allow_disruptive=True
    )
    assert not report.passed and report.load is None
    assert [c.name for c in report.checks] == ["a Patroni cluster of this inventory"]
