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


def stack_findings(
    cluster: Cluster | None, backends: Sequence[BackendServer], *, replicas: int
) -> list[Finding]:
    """The cluster's findings, and HAProxy routing rw to its leader."""
    if cluster is None:
        return [Finding("Patroni answers", False, "no Patroni REST endpoint answered")]
    leader = cluster.leader
    routed = [b.server for b in backends if b.listener == "rw" and b.up]
    return [
        *cluster_findings(cluster, replicas=replicas),
        Finding(
            "HAProxy routes rw to the leader",
            leader is not None and routed == [leader.name],
            f"rw UP on {', '.join(routed) or 'nothing'}",
        ),
    ]
