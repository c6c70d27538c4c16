"""The lab on real containers: topology, routing, persistence, idempotence, teardown.

Tests run in file order on one session stack; the last ones restart and remove it.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import psycopg
import pytest

from harness.lab.topology import ETCD_MEMBERS, NODES
from harness.stack.lifecycle import Stack
from tests.integration.conftest import answering_address, eventually, node_addresses
from tests.realstack import bring_up

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]


def test_patroni_reports_a_leader_two_streaming_replicas_and_a_sync_standby(stack: Stack) -> None:
    status = stack.status()
    cluster = status.cluster
    assert cluster is not None, status.cluster_error
    assert {m.name for m in cluster.members} == {"pg1", "pg2", "pg3"}
    assert cluster.leader is not None
    assert len(cluster.streaming_replicas) == 2
    assert len(cluster.sync_standbys) == 1
    assert len({m.timeline for m in cluster.members}) == 1
    assert status.healthy


def test_rw_reaches_only_the_leader_and_ro_only_replicas(stack: Stack) -> None:
    cluster = stack.status().cluster
    assert cluster is not None and cluster.leader is not None
    addresses = node_addresses(stack)
    leader_ip = addresses[cluster.leader.name]
    replica_ips = {ip for name, ip in addresses.items() if name != cluster.leader.name}

    assert {answering_address(stack.lab.dsn("rw")) for _ in range(4)} == {leader_ip}
    assert {answering_address(stack.lab.dsn("ro")) for _ in range(6)} == replica_ips


def test_pgbouncer_pools_to_the_primary_with_prepared_statements(stack: Stack) -> None:
    with psycopg.connect(stack.lab.dsn("pooler"), autocommit=True) as conn:
        # Past psycopg's prepare threshold, across pooled transactions.
        for _ in range(10):
            row = conn.execute("select pg_is_in_recovery(), %s::int", (1,)).fetchone()
            assert row == (False, 1)


def test_an_acknowledged_write_reaches_the_replicas(stack: Stack) -> None:
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        conn.execute("create table if not exists lab_probe (id int primary key, note text)")
        conn.execute("insert into lab_probe values (1, 'replicated') on conflict do nothing")

    def replicated() -> bool:
        with psycopg.connect(stack.lab.dsn("ro"), autocommit=True) as conn:
            return conn.execute("select note from lab_probe where id = 1").fetchone() == (
                "replicated",
            )

    eventually(replicated, 10, "the row on a replica")


def test_up_again_changes_nothing(stack: Stack) -> None:
    before = {c.name: c.id for c in stack.containers()}
    bring_up(stack)
    assert {c.name: c.id for c in stack.containers()} == before
    assert stack.status().healthy


def test_status_cli_prints_json_and_exits_zero_when_healthy(test_env: dict[str, str]) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "harness", "status", "--json"],
        env=test_env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)
    assert report["healthy"] is True
    assert {b["listener"] for b in report["backends"]} == {"rw", "ro"}


def test_psql_cli_reaches_each_endpoint(test_env: dict[str, str]) -> None:
    for endpoint, expected in (("rw", "f"), ("ro", "t"), ("pooler", "f")):
        done = subprocess.run(
            [
                sys.executable,
                "-m",
                "harness",
                "psql",
                endpoint,
                "-Atc",
                "select pg_is_in_recovery()",
            ],
            env=test_env,
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert (done.returncode, done.stdout.strip()) == (0, expected), done.stderr


def test_data_survives_a_full_stack_restart(stack: Stack) -> None:
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        conn.execute("create table if not exists lab_restart (id int primary key)")
        conn.execute("insert into lab_restart values (42) on conflict do nothing")
    removed = stack.down(volumes=False)
    assert removed["containers"] and not removed["volumes"]
    kept = {v.removeprefix(f"{stack.lab.project}_") for v in stack.resources()["volumes"]}
    assert {*ETCD_MEMBERS, *NODES, "backups"} <= kept
    bring_up(stack)
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        assert conn.execute("select id from lab_restart").fetchall() == [(42,)]


def test_ctrl_c_during_up_leaves_nothing_running_and_up_recovers(
    stack: Stack, test_env: dict[str, str]
) -> None:
    stack.down(volumes=False)
    up = subprocess.Popen(
        [sys.executable, "-m", "harness", "up"],
        env=test_env,
        start_new_session=True,
        # as in a terminal: a suite started in the background inherits SIGINT ignored
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    eventually(lambda: bool(stack.running_services() & set(NODES)), 120, "a node started")
    os.killpg(up.pid, signal.SIGINT)  # what a terminal's Ctrl-C does
    output, _ = up.communicate(timeout=120)
    assert up.returncode == -signal.SIGINT, output  # ended as SIGINT ends a program
    assert "interrupted" in output
    assert stack.running_services() == set()
    bring_up(stack)
    assert stack.status().healthy


def test_down_leaves_no_container_or_network_and_with_volumes_no_volume(stack: Stack) -> None:
    stack.down(volumes=False)
    left = stack.resources()
    assert (left["containers"], left["networks"]) == ([], [])
    assert left["volumes"]
    stack.down(volumes=True)
    assert stack.resources() == {"containers": [], "networks": [], "volumes": []}
