"""Each fault has the effect it claims on the real stack, and healing leaves no trace."""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from harness.clients.patroni import PatroniClient, verifying
from harness.core.errors import CommandError, ConfigError, HarnessError, ReadinessTimeout
from harness.faults.controller import Faults
from harness.lab.topology import NODES
from harness.stack.lifecycle import Stack
from tests.integration.conftest import eventually

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
HEAL_TIMEOUT = 120.0
REBUILD_TIMEOUT = 300.0


@pytest.fixture
def faults(stack: Stack, request: pytest.FixtureRequest) -> Iterator[Faults]:
    """Every test ends healed and ready, even when it fails half-way."""
    controller = Faults(stack)
    since = datetime.now(UTC)
    yield controller
    controller.heal_all()
    try:
        stack.wait_ready(HEAL_TIMEOUT)
    except ReadinessTimeout:
        if not rebuild_unjoined(stack, since, request.node.name):
            raise


def rebuild_unjoined(stack: Stack, since: datetime, test: str) -> list[str]:
    """A member that never rejoined after the heal is rebuilt, as an operator would, so the
    tests after this one start healthy; its whole log is kept and the test warns, since a
    member that cannot rejoin is a finding about the platform, not about this test's fault.
    Seen after the isolated-leader test: the old leader sat `starting`, "consistent recovery
    state has not been yet reached", for the whole heal budget."""
    cluster = stack.status().cluster
    if cluster is None or cluster.leader is None:
        return []
    stuck = [m.name for m in cluster.members if not m.is_leader and m.state != "streaming"]
    if not stuck:
        return []
    logs = Path("artifacts") / "test-faults"
    logs.mkdir(parents=True, exist_ok=True)
    for name in stuck:
        (logs / f"{test}-{name}.log").write_text(stack.logs_since(name, since))
    warnings.warn(
        f"{', '.join(stuck)} did not rejoin within {HEAL_TIMEOUT:.0f} s of the heal and were "
        f"rebuilt from the leader; their logs are in {logs}",
        stacklevel=1,
    )
    with stack.patroni() as patroni:
        for name in stuck:
            patroni.reinitialize(stack.lab.rest_url(name))
    stack.wait_ready(REBUILD_TIMEOUT)
    return stuck


def query_ms(dsn: str) -> float:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select 1")
        start = time.perf_counter()
        conn.execute("select 1")
        return (time.perf_counter() - start) * 1000


def rest_answers(stack: Stack, node: str) -> bool:
    try:
        httpx.get(
            stack.lab.rest_url(node, "/health"), timeout=1, verify=verifying(stack.lab.rest_ca)
        )
    except httpx.HTTPError:
        return False
    return True


def test_a_killed_replica_is_down_until_healed(stack: Stack, faults: Faults) -> None:
    with faults.container_fault("kill", "replica") as fault:
        assert fault.description.startswith("kill pg")
        node = fault.description.split()[-1]
        assert node not in stack.running_services()
    assert node in stack.running_services()


def test_a_paused_node_stops_answering(stack: Stack, faults: Faults) -> None:
    node = faults.resolve("replica")
    assert rest_answers(stack, node)
    with faults.container_fault("pause", node):
        assert not rest_answers(stack, node)
        assert faults.traces().paused == [node]
    assert rest_answers(stack, node)


def test_latency_shows_in_query_time_on_the_faulted_link_only(stack: Stack, faults: Faults) -> None:
    assert query_ms(stack.lab.dsn("proxied-rw")) < 50
    with faults.toxic("rw", "latency", {"latency": 150, "jitter": 0}):
        assert query_ms(stack.lab.dsn("proxied-rw")) >= 150
        assert query_ms(stack.lab.dsn("rw")) < 50  # the direct port is not faulted
    assert query_ms(stack.lab.dsn("proxied-rw")) < 50


def test_a_replica_cut_from_the_primary_falls_behind(stack: Stack, faults: Faults) -> None:
    node = faults.resolve("replica")

    def behind() -> bool:
        with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
            conn.execute("create table if not exists fault_probe (at timestamptz)")
            conn.execute("insert into fault_probe values (now())")
        cluster = stack.status().cluster
        member = cluster.member(node) if cluster else None
        return member is None or member.state != "streaming" or (member.lag or 0) > 0

    with faults.cut_from_peers(node):
        eventually(behind, 30, f"{node} falls behind the primary")
    eventually(lambda: not behind(), HEAL_TIMEOUT, f"{node} catches up after the heal")


def test_an_isolated_leader_demotes_itself(stack: Stack, faults: Faults) -> None:
    leader = faults.resolve("leader")

    def demoted() -> bool:
        try:
            answer = stack.node_sql(leader, "select pg_is_in_recovery()")
        except CommandError:  # PostgreSQL stopped: no longer a writable primary either
            return True
        return answer == "t"

    others = [stack.lab.rest_url(n) for n in NODES if n != leader]

    def taken_over() -> bool:
        try:
            with PatroniClient(others, ca_file=stack.lab.rest_ca) as patroni:
                new = patroni.cluster().leader
        except HarnessError:
            return False
        return new is not None and new.name != leader

    assert not demoted()
    with faults.isolate(leader):
        eventually(demoted, 60, f"isolated leader {leader} demotes itself")
        eventually(taken_over, 60, "another member takes over the leader lock")


def test_heal_all_leaves_nothing_behind(stack: Stack, faults: Faults) -> None:
    replica = faults.resolve("replica")
    for fault in (
        faults.container_fault("pause", replica),
        faults.cut_from_etcd("sync-standby"),
        faults.partition("haproxy", "leader", one_way=True),
        faults.toxic("ro", "bandwidth", {"rate": 10}),
        faults.link_down("pooler"),
    ):
        fault.apply()
    left = faults.traces()
    assert left.paused and left.rules and left.toxics and left.disabled_links
    done = faults.heal_all()
    assert len(done) >= 4
    assert not faults.traces()
    stack.wait_ready(HEAL_TIMEOUT)
    assert faults.heal_all() == []  # healing a healthy lab does nothing


@pytest.mark.parametrize(
    "build",
    [
        lambda f: f.container_fault("kill", "pg9"),
        lambda f: f.isolate("haproxy"),
        lambda f: f.partition("haproxy", "pgbouncer"),
        lambda f: f.toxic("rw", "latency", {"latency": 1}, stream="sideways"),
    ],
)
def test_bad_targets_are_refused_before_anything_changes(
    faults: Faults, build: Callable[[Faults], object]
) -> None:
    with pytest.raises(ConfigError):
        build(faults)
    assert not faults.traces()
