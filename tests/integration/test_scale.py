"""A fourth member joins and leaves the real cluster under clients of PgBouncer: it streams
and serves HAProxy's ro port, then leaves no member key, slot, container or volume, and
the clients see no error."""

from __future__ import annotations

import subprocess

import psycopg
import pytest

from harness.chaos.invariants import client_errors, client_gaps
from harness.chaos.workload import Workload, WorkloadTarget
from harness.clients.monitoring import PrometheusClient, Target
from harness.data.scales import TABLES
from harness.data.verify import verify
from harness.lab.topology import SCOPE
from harness.maintenance.planned import Planned
from harness.maintenance.scale import DCS_NAMESPACE, Scale
from harness.stack.lifecycle import Stack
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]


def members_in_etcd(stack: Stack) -> str:
    prefix = f"{DCS_NAMESPACE}/{SCOPE}/members/"
    return stack.execute("etcd1", ["etcdctl", "get", "--prefix", "--keys-only", prefix])


def ro_servers(stack: Stack, tries: int = 12) -> set[str]:
    """The nodes answering on HAProxy's ro port over a few fresh connections."""
    seen = set()
    for _ in range(tries):
        with psycopg.connect(stack.lab.dsn("ro", connect_timeout=2), autocommit=True) as conn:
            row = conn.execute("SELECT host(inet_server_addr())").fetchone()
        assert row is not None
        seen.add(str(row[0]))
    return seen


def scraped(stack: Stack, instance: str) -> list[Target]:
    prometheus = PrometheusClient(stack.lab.url("prometheus"), timeout=2)
    try:
        return [t for t in prometheus.targets() if t.instance == instance]
    finally:
        prometheus.close()


def scraped_up(stack: Stack, instance: str) -> set[str]:
    return {t.job for t in scraped(stack, instance) if t.up}


def test_a_fourth_member_joins_the_ro_pool_and_leaves_nothing_behind(stack: Stack) -> None:
    scale = Scale(Planned(stack, say=print))
    target = WorkloadTarget.of_lab(stack.lab, "pooler")
    with Workload(target, writers=2) as load:
        eventually(lambda: len(load.record.attempts) > 20, 20, "writes flowing")
        load.mark("fault")
        out = scale.scale(4)
        assert out.after == ["pg1", "pg2", "pg3", "pg4"]
        assert stack.node_sql("pg4", "SELECT pg_is_in_recovery()") == "t"
        pg4 = stack.container("pg4").addresses
        assert set(pg4) & ro_servers(stack), f"pg4 ({pg4}) never answered on the ro port"
        # Prometheus scrapes pg4's Patroni and its exporter, and readiness expects them
        eventually(lambda: scraped_up(stack, "pg4") == {"patroni", "postgres"}, 30, "pg4 scraped")
        stack.wait_ready(30)
        # The content check covers the fourth member as every other one (on the CRM's
        # tables: the writers' table moves on while the nodes are read one by one).
        checks = verify(stack.node_sql, stack.leader(), tables=TABLES, nodes=out.after)
        assert all(set(c.per_node) == set(out.after) and c.passed for c in checks), checks
        back = scale.scale(3)
    record = load.record
    assert back.after == ["pg1", "pg2", "pg3"] and list(back.left) == ["pg4"]
    assert "pg4" not in members_in_etcd(stack)
    assert "pg4" not in scale.leader_slots()
    assert "pg4" not in {c.service for c in stack.containers()}
    assert f"{stack.lab.project}_pg4" not in {v.name for v in stack.volumes()}
    assert "pg4-exporter" not in {c.service for c in stack.containers()}
    eventually(lambda: not scraped(stack, "pg4"), 30, "pg4 no longer scraped")
    stack.wait_ready(30)  # "every target up" holds without pg4
    acked = record.acked()
    assert client_errors(record) == 0, [a.error for a in record.attempts if a.outcome != "ack"]
    assert acked <= load.table.ids_on(target.setup_dsn)
    gaps = client_gaps(record, record.marks["fault"])
    print(
        f"scale 3 -> 4 -> 3 through PgBouncer: 0 client errors, largest client gap "
        f"{max(gaps.values()):.2f} s; pg4 streamed after {out.joined['pg4'][0]:.1f} s, in ro "
        f"after {out.joined['pg4'][1]:.1f} s, left in {back.left['pg4']:.1f} s"
    )


@pytest.mark.parametrize(("size", "says"), [("2", "out of range"), ("6", "out of range")])
def test_a_size_out_of_range_is_one_message_and_changes_nothing(
    stack: Stack, test_env: dict[str, str], size: str, says: str
) -> None:
    before = {c.service for c in stack.containers()}
    done = subprocess.run(
        [".venv/bin/harness", "scale", "--replicas", size],
        env=test_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert done.returncode == 2 and says in done.stderr and len(lines) <= 2, done.stderr
    assert "Traceback" not in done.stderr
    assert {c.service for c in stack.containers()} == before
