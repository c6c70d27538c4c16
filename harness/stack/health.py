"""Whether a Patroni cluster is healthy: one judgement, shared by `status`, readiness and the
gate, each finding named so a report can say which one failed."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from harness.clients.haproxy import BackendServer
from harness.clients.patroni import Cluster


@dataclass(frozen=True)
class Finding:
    name: str
    passed: bool
    detail: str


def cluster_findings(
    cluster: Cluster, *, replicas: int, max_lag: int | None = None
) -> list[Finding]:
    """One running leader; every other member streaming (at least `replicas` of them, each
    within `max_lag` bytes when given); a synchronous standby named."""
    standbys = [m for m in cluster.members if not m.is_leader]
    lagging = [
        m.name
        for m in standbys
        if m.state != "streaming" or (max_lag is not None and (m.lag or 0) > max_lag)
    ]
    lag_rule = f", lag <= {max_lag} bytes" if max_lag is not None else ""
    return [
        Finding("one leader", len(cluster.leaders) == 1, cluster.describe()),
        Finding(
            f"replicas streaming{lag_rule}",
            len(cluster.streaming_replicas) >= replicas and bool(standbys) and not lagging,
            ", ".join(f"{m.name} {m.state} lag {m.lag}" for m in standbys) or "no replica",
        ),
        Finding(
            "a synchronous standby",
            bool(cluster.sync_standbys),
            ", ".join(m.name for m in cluster.sync_standbys) or "none",
        ),
    ]


def routing_findings(cluster: Cluster, backends: Sequence[BackendServer]) -> list[Finding]:
    """HAProxy routing rw to the leader alone and ro to every streaming replica: a replica
    streaming but not yet UP in ro is a lab that reads from fewer nodes than it reports."""
    leader = cluster.leader
    rw, ro = (
        sorted(b.server for b in backends if b.listener == name and b.up) for name in ("rw", "ro")
    )
    replicas = sorted(m.name for m in cluster.streaming_replicas)
    return [
        Finding(
            "HAProxy routes rw to the leader",
            leader is not None and rw == [leader.name],
            f"rw UP on {', '.join(rw) or 'nothing'}",
        ),
        Finding(
            "HAProxy routes ro to every streaming replica",
            bool(replicas) and ro == replicas,
            f"ro UP on {', '.join(ro) or 'nothing'}; streaming {', '.join(replicas) or 'none'}",
        ),
    ]


def stack_findings(
    cluster: Cluster | None, backends: Sequence[BackendServer], *, replicas: int
) -> list[Finding]:
    """The cluster's findings, and HAProxy's routing of both ports."""
    if cluster is None:
        return [Finding("Patroni answers", False, "no Patroni REST endpoint answered")]
    return [*cluster_findings(cluster, replicas=replicas), *routing_findings(cluster, backends)]
