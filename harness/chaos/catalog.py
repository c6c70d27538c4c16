"""Each scenario reads: steady load, then the fault, held for a while, then healed, then
checked: no acknowledged write lost, no unexpected row, no split brain, nodes converged,
and the write outage within its budget. Scenarios with an import add: every valid row of a
CSV import running through the fault in leads exactly once, every invalid row rejected with
its line, and the fault did meet the import.

Budgets are for the `fast` preset (ttl 20 s): a hard failure of the leader can only be
detected when its leader lock expires, so ttl bounds it.
"""

from __future__ import annotations

from harness.chaos.alerts import NEVER_FIRE, AlertExpectation
from harness.chaos.imports import ImportPlan
from harness.chaos.runner import Expectation, Scenario
from harness.core.errors import ConfigError
from harness.faults.model import STREAMS
from harness.lab.presets import get_preset
from harness.maintenance.planned import (
    planned_reinit,
    planned_rolling_restart,
    planned_switchover,
)
from harness.maintenance.scale import planned_scale_out_in

TTL = get_preset("fast").ttl
IMPORT_ROWS = 200_000
SHORT_IMPORT_ROWS = 50_000  # its merge lasts a few seconds: long enough to be cut, short for CI
# From a promotion to Alertmanager: a scrape (5 s), an evaluation (5 s), group_wait (1 s).
ALERT_DELAY = 12
# Failovers that must stay quiet: a switchover is over before any `for` has run out.
FAILOVER_SILENT = (*NEVER_FIRE, "PatroniNoLeader", "HaproxyRwNoBackend", "InstanceDown")

CATALOG: dict[str, Scenario] = {
    s.name: s
    for s in (
        Scenario(
            name="leader-kill",
            ci=True,
            story="The leader's container is SIGKILLed under write load. Its lock expires "
            "after ttl, the synchronous standby is promoted, HAProxy follows within a check.",
            fault=lambda f: f.container_fault("kill", "leader"),
            hold=TTL + 10,
            expect=Expectation(failover=True, max_write_gap=TTL + 2),
            alerts=(
                # the promotion comes ~ttl after the kill; the alert clears a minute after it
                AlertExpectation("PatroniLeaderChanged", TTL + 5 + ALERT_DELAY, 75),
                AlertExpectation("HaproxyRwNoBackend", 5 + ALERT_DELAY, 10),
                AlertExpectation("InstanceDown", 10 + ALERT_DELAY, 30),
            ),
        ),
        Scenario(
            name="leader-stop",
            story="The leader is stopped gracefully (as a package upgrade would). Patroni "
            "hands the lock over on the way out, so the outage is short.",
            fault=lambda f: f.container_fault("stop", "leader"),
            hold=20,
            expect=Expectation(failover=True, max_write_gap=10),
        ),
        Scenario(
            name="switchover",
            ci=True,
            story="A planned switchover to the synchronous standby through Patroni's API.",
            fault=lambda f: f.planned_switchover("sync-standby"),
            hold=5,
            expect=Expectation(failover=True, max_write_gap=3),
            alerts=(AlertExpectation("PatroniLeaderChanged", 3 + ALERT_DELAY),),
            never=FAILOVER_SILENT,
        ),
        Scenario(
            name="replica-kill",
            story="The asynchronous replica is SIGKILLed. Writes carry on untouched.",
            fault=lambda f: f.container_fault("kill", "replica"),
            hold=15,
            expect=Expectation(failover=False, max_write_gap=1),
        ),
        Scenario(
            name="sync-standby-kill",
            story="The synchronous standby is SIGKILLed. Commits wait until Patroni names the "
            "other replica synchronous, then flow again.",
            fault=lambda f: f.container_fault("kill", "sync-standby"),
            hold=20,
            expect=Expectation(failover=False, max_write_gap=TTL),
        ),
        Scenario(
            name="leader-freeze",
            story="The leader's container is frozen (docker pause). Its lock expires, a "
            "replica takes over; thawed, the old leader finds itself replaced and rejoins.",
            fault=lambda f: f.container_fault("pause", "leader"),
            hold=TTL + 10,
            # Unlike a kill, a frozen node neither refuses nor resets connections: HAProxy's
            # checks time out and hung sessions close only then (measured 22.4 s once).
            expect=Expectation(failover=True, max_write_gap=TTL + 5),
        ),
        Scenario(
            name="leader-isolated",
            story="The leader loses every link. It cannot renew its lock nor reach a member, "
            "so it demotes itself; the synchronous standby is promoted.",
            fault=lambda f: f.isolate("leader"),
            hold=TTL + 15,
            expect=Expectation(failover=True, max_write_gap=TTL + 5),
        ),
        Scenario(
            name="leader-cut-from-etcd",
            story="Only the leader loses etcd; the replicas still reach it and etcd. Failsafe "
            "mode keeps it: every member still answers it over REST, so nobody takes over.",
            fault=lambda f: f.cut_from_etcd("leader"),
            hold=TTL + 10,
            expect=Expectation(
                failover=False,
                max_write_gap=1,
                note="observed with failsafe_mode: the leader stays and keeps writing; "
                "without it the leader would demote after ttl",
            ),
        ),
        Scenario(
            name="replica-cut-from-primary",
            ci=True,
            story="The asynchronous replica is cut from its peers and falls behind; writes "
            "are untouched; healed, it catches up.",
            fault=lambda f: f.cut_from_peers("replica"),
            hold=15,
            expect=Expectation(failover=False, max_write_gap=1),
            # 15 s behind is under ReplicationLagHigh's 30 s for 1 m; monitoring still sees
            # the node (Prometheus and the exporter are not its peers), so nothing fires
            never=(*FAILOVER_SILENT, "PatroniLeaderChanged"),
        ),
        Scenario(
            name="etcd-member-loss",
            story="One etcd member is killed; two of three keep quorum.",
            fault=lambda f: f.container_fault("kill", "etcd1"),
            hold=15,
            expect=Expectation(failover=False, max_write_gap=1),
        ),
        Scenario(
            name="etcd-quorum-loss",
            ci=True,
            story="Two etcd members are killed, longer than ttl. With failsafe mode the leader "
            "still reaches every member over REST, so it keeps accepting writes.",
            fault=lambda f: f.together(
                f.container_fault("kill", "etcd1"), f.container_fault("kill", "etcd2")
            ),
            hold=TTL + 10,
            expect=Expectation(failover=False, max_write_gap=1),
            alerts=(
                AlertExpectation("InstanceDown", 10 + ALERT_DELAY, 30),
                AlertExpectation("EtcdInsufficientMembers", 10 + ALERT_DELAY, 30),
                AlertExpectation("EtcdNoLeader", 10 + ALERT_DELAY, 30),  # etcd3, alone
            ),
            never=(*NEVER_FIRE, "PatroniLeaderChanged", "HaproxyRwNoBackend"),
        ),
        Scenario(
            name="replication-latency",
            story="100 ms on the leader's replication link: synchronous commits slow down "
            "by that much, nothing fails.",
            fault=lambda f: f.toxic("leader", "latency", {"latency": 100, "jitter": 0}),
            hold=15,
            expect=Expectation(failover=False, max_write_gap=1),
        ),
        Scenario(
            name="haproxy-restart",
            story="HAProxy restarts: client connections drop and reconnect.",
            fault=lambda f: f.container_fault("restart", "haproxy"),
            hold=5,
            expect=Expectation(failover=False, max_write_gap=5),
        ),
        Scenario(
            name="pgbouncer-restart",
            story="PgBouncer restarts under clients that write through it.",
            fault=lambda f: f.container_fault("restart", "pgbouncer"),
            hold=5,
            expect=Expectation(failover=False, max_write_gap=5),
            endpoint="pooler",
        ),
        Scenario(
            name="full-cluster-restart",
            story="Every database node is stopped, then started: the cluster comes back with "
            "all its data.",
            fault=lambda f: f.together(
                *(f.container_fault("stop", n) for n in ("pg1", "pg2", "pg3"))
            ),
            hold=5,
            expect=Expectation(failover=None, max_write_gap=90),
        ),
        Scenario(
            name="leader-and-sync-standby-lost",
            story="The leader and the synchronous standby are killed together.",
            fault=lambda f: f.together(
                f.container_fault("kill", "sync-standby"), f.container_fault("kill", "leader")
            ),
            hold=TTL + 10,
            expect=Expectation(
                failover=None,
                note="synchronous_mode (not strict) lets only the synchronous standby be "
                "promoted: the remaining asynchronous replica may hold less than was "
                "acknowledged, so writes BLOCK until a lost node returns; nothing is lost",
            ),
        ),
        Scenario(
            name="s3-slow-then-unreachable",
            story="The S3 repository's link gets 1 s of latency for 10 s, then goes down for "
            "20 s. Writes go on (archiving never holds a commit back), the leader's WAL waits in "
            "pg_wal (`harness backups` says how much), and once the link is back the archiver "
            "pushes all of it: nothing is lost, the archive has no gap.",
            fault=lambda f: f.stages(
                (f.toxic("s3", "latency", {"latency": 1000, "jitter": 0}), 10),
                (f.link_down("s3"), 20),
            ),
            hold=30,
            expect=Expectation(failover=False, max_write_gap=1),
            archive=True,
        ),
        Scenario(
            name="import-leader-kill",
            story="The leader is SIGKILLed while a 200k-row CSV import stages its batches. "
            "The import service retries until the new leader answers, skips the batches the "
            "ledger holds, and merges once.",
            fault=lambda f: f.container_fault("kill", "leader"),
            hold=TTL + 10,
            expect=Expectation(failover=True, max_write_gap=TTL + 2),
            imports=ImportPlan(IMPORT_ROWS),
        ),
        Scenario(
            name="import-service-restart",
            story="The import service is SIGKILLed in the middle of a 200k-row import and "
            "started again; it finds the unfinished import in the database and resumes it.",
            fault=lambda f: f.container_fault("kill", "csv-import"),
            hold=5,
            expect=Expectation(failover=False, max_write_gap=1),
            imports=ImportPlan(IMPORT_ROWS),
        ),
        Scenario(
            name="import-link-cut",
            ci=True,
            story="The import service's database link goes down for 5 s (the fault proxy "
            "closes its connections and refuses new ones) while a 50k-row import merges. The "
            "merge in flight loses its connection and rolls back; the worker retries until "
            "the link is back and merges once. The cluster's other clients see nothing.",
            fault=lambda f: f.link_down("csv-import"),
            hold=5,
            expect=Expectation(failover=False, max_write_gap=1),
            imports=ImportPlan(SHORT_IMPORT_ROWS, fault_in="merging", cut=True),
        ),
        Scenario(
            name="import-link-reset",
            story="Every connection of the import service to the database is reset on its "
            "next write (reset_peer on its link, upstream) for 10 s while a 200k-row import "
            "stages: the COPY in flight is cut, and each reconnect too, until the heal; the "
            "ledger says which batches committed.",
            fault=lambda f: f.toxic("csv-import", "reset_peer", {"timeout": 0}, "upstream"),
            hold=10,
            expect=Expectation(failover=False, max_write_gap=1),
            imports=ImportPlan(IMPORT_ROWS, fault_in="staging", cut=True),
        ),
        Scenario(
            name="import-link-hang",
            story="The import service's link stops carrying data both ways (timeout toxics "
            "that hold connections open) for 15 s while a 200k-row import merges: the merge's "
            "answer never comes and reconnects time out. Healed, the proxy ends the held "
            "connections, the old session rolls back, and the worker merges once.",
            fault=lambda f: f.together(
                *(f.toxic("csv-import", "timeout", {"timeout": 0}, s) for s in STREAMS)
            ),
            hold=15,
            expect=Expectation(failover=False, max_write_gap=1),
            imports=ImportPlan(IMPORT_ROWS, fault_in="merging", cut=True),
        ),
        Scenario(
            name="planned-switchover-pooler",
            group="planned",
            ci=True,
            story="`harness switchover` under clients of PgBouncer: PgBouncer pauses, Patroni "
            "hands over to the synchronous standby, PgBouncer resumes once HAProxy routes to "
            "it. Clients wait; none gets an error.",
            fault=planned_switchover,
            hold=3,
            endpoint="pooler",
            # The gap is Patroni's hand-over while PgBouncer holds the queries: 1.9-2.8 s in
            # `make bench-switchover`, once 5.9 s in a CI run; what this proves is no errors.
            expect=Expectation(failover=True, max_write_gap=8, max_client_errors=0),
            alerts=(AlertExpectation("PatroniLeaderChanged", 3 + ALERT_DELAY),),
            never=FAILOVER_SILENT,
        ),
        Scenario(
            name="planned-switchover-direct",
            group="planned",
            story="`harness switchover` under clients of HAProxy's rw port: their sessions "
            "are closed by the demotion, they reconnect to the new leader.",
            fault=planned_switchover,
            hold=3,
            expect=Expectation(failover=True, max_write_gap=3),
            alerts=(AlertExpectation("PatroniLeaderChanged", 3 + ALERT_DELAY),),
            never=FAILOVER_SILENT,
        ),
        Scenario(
            name="planned-reinit",
            group="planned",
            ci=True,
            story="`harness reinit` rebuilds the asynchronous replica from the leader under "
            "clients of PgBouncer: the leader stays, writes carry on untouched.",
            fault=planned_reinit,
            hold=2,
            endpoint="pooler",
            expect=Expectation(failover=False, max_write_gap=1, max_client_errors=0),
            never=FAILOVER_SILENT,
        ),
        Scenario(
            name="planned-scale-out-in",
            group="planned",
            story="`harness scale` under clients of PgBouncer: pg4 and pg5 are cloned from the "
            "leader and join HAProxy's ro pool, serve it for the hold, then leave (key, slot, "
            "container and volume removed). The leader stays; writes carry on untouched.",
            fault=planned_scale_out_in,
            hold=3,
            endpoint="pooler",
            expect=Expectation(failover=False, max_write_gap=2, max_client_errors=0),
            never=FAILOVER_SILENT,
        ),
        Scenario(
            name="planned-rolling-restart",
            group="planned",
            story="`harness restart --rolling` under clients of PgBouncer, for shared_buffers "
            "16 MB up: replicas restart first, the leader moves with PgBouncer paused, the old "
            "leader last; then the old value is rolled out the same way. Clients wait twice; "
            "none gets an error.",
            fault=planned_rolling_restart,
            hold=2,
            endpoint="pooler",
            # each roll-out holds PgBouncer for one switchover (see planned-switchover-pooler)
            expect=Expectation(failover=True, max_write_gap=8, max_client_errors=0),
            never=FAILOVER_SILENT,
        ),
    )
}
GROUPS = sorted({s.group for s in CATALOG.values()})


def scenario_named(name: str) -> Scenario:
    """A scenario of the catalog, or a clear refusal naming where the catalog is listed."""
    if name not in CATALOG:
        raise ConfigError(f"unknown scenario {name!r}", "`harness chaos list` shows the catalog")
    return CATALOG[name]
