"""Readiness as objects: each check observes one fact; `wait_for` polls them all to a deadline.

"Containers started" proves nothing; the lab is ready when Patroni reports the
topology and every client endpoint answers on the right kind of node.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import httpx
import psycopg

from harness.clients.faultproxy import FaultProxyClient
from harness.clients.haproxy import fetch_backends
from harness.clients.monitoring import PrometheusClient
from harness.clients.patroni import PatroniClient
from harness.clients.s3 import S3Client
from harness.config.monitoring import expected_targets
from harness.core.errors import HarnessError, ReadinessTimeout, first_line
from harness.core.polling import SYSTEM_CLOCK, Clock, poll
from harness.lab.project import Lab
from harness.lab.topology import ALERT_LOG, CSV_IMPORT, NODES, PROXY_LINKS, S3_BUCKET
from harness.stack.health import cluster_findings, routing_findings


@dataclass(frozen=True)
class Observation:
    """What one look at a check found."""

    ok: bool
    detail: str


class Check(Protocol):
    @property
    def name(self) -> str: ...

    def probe(self) -> Observation: ...


@dataclass(frozen=True)
class PatroniTopology:
    """A running leader, every other member streaming, and a synchronous standby named."""

    patroni: PatroniClient
    replicas: int = len(NODES) - 1
    name: str = "Patroni: a leader, streaming replicas, a sync standby"

    def probe(self) -> Observation:
        cluster = self.patroni.cluster()
        findings = cluster_findings(cluster, replicas=self.replicas)
        return Observation(all(f.passed for f in findings), cluster.describe())


@dataclass(frozen=True)
class HAProxyRoutes:
    """HAProxy's stats show rw UP on the leader alone and ro UP on every streaming replica:
    one ro connection answering proves only one replica routable."""

    patroni: PatroniClient
    stats_url: str
    name: str = "HAProxy: rw to the leader, ro to every replica"

    def probe(self) -> Observation:
        findings = routing_findings(self.patroni.cluster(), fetch_backends(self.stats_url))
        return Observation(all(f.passed for f in findings), "; ".join(f.detail for f in findings))


@dataclass(frozen=True)
class SqlAnswers:
    """An endpoint answers a query, and the answer says it reached the right kind of node."""

    name: str
    dsn: str
    expect_recovery: bool | None  # True: a replica; False: the primary; None: any node

    def probe(self) -> Observation:
        with psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None) as conn:
            row = conn.execute("select pg_is_in_recovery(), inet_server_addr()::text").fetchone()
        assert row is not None
        in_recovery, address = bool(row[0]), row[1]
        where = f"{'replica' if in_recovery else 'primary'} at {address}"
        ok = self.expect_recovery is None or in_recovery == self.expect_recovery
        return Observation(ok, where)


@dataclass(frozen=True)
class FaultProxyClean:
    """The fault proxy answers, carries every link, and none is disabled or poisoned."""

    proxy: FaultProxyClient
    links: tuple[str, ...]
    name: str = "fault proxy: every link enabled, no toxics"

    def probe(self) -> Observation:
        proxies = self.proxy.proxies()
        missing = [link for link in self.links if link not in proxies]
        disabled = [n for n, p in proxies.items() if not p["enabled"]]
        poisoned = [n for n, p in proxies.items() if p["toxics"]]
        ok = not (missing or disabled or poisoned)
        detail = f"missing {missing}, disabled {disabled}, with toxics {poisoned}"
        return Observation(ok, f"{len(proxies)} links" if ok else detail)


@dataclass(frozen=True)
class HttpOk:
    """An HTTP service answers 200 on a health path."""

    name: str
    url: str

    def probe(self) -> Observation:
        status = httpx.get(self.url, timeout=2).status_code
        return Observation(status == 200, f"HTTP {status}")


@dataclass(frozen=True)
class BucketThere:
    """The S3 server answers a signed request over TLS, and the repository's bucket exists:
    made on the first `up` (S3 refuses to make it twice), so archiving has somewhere to go."""

    s3: S3Client
    bucket: str = S3_BUCKET
    name: str = "S3 server: the repository's bucket"

    def probe(self) -> Observation:
        self.s3.create_bucket(self.bucket)
        return Observation(True, f"bucket {self.bucket}")


@dataclass(frozen=True)
class TargetsUp:
    """Prometheus scrapes every target it is configured for, and each answered: the static
    ones and the extra members listed in the rendered discovery files at this moment."""

    prometheus: PrometheusClient
    rendered: Path
    name: str = "Prometheus: every target up"

    @property
    def expected(self) -> int:
        return expected_targets(self.rendered)

    def probe(self) -> Observation:
        targets, expected = self.prometheus.targets(), self.expected
        down = [f"{t.job}/{t.instance} ({t.error or t.health})" for t in targets if not t.up]
        ok = len(targets) == expected and not down
        up = len(targets) - len(down)
        return Observation(
            ok, f"{up}/{expected} up" + (f"; down: {', '.join(down)}" if down else "")
        )


def ready_checks(lab: Lab, patroni: PatroniClient) -> list[Check]:
    """What proves the lab's core stack ready."""
    return [
        FaultProxyClean(
            FaultProxyClient(lab.url("faultproxy"), timeout=2),
            tuple(link.name for link in PROXY_LINKS),
        ),
        BucketThere(lab.s3()),
        PatroniTopology(patroni),
        HAProxyRoutes(patroni, lab.url("stats", "/;csv")),
        SqlAnswers("rw port on the primary", lab.dsn("rw", connect_timeout=2), False),
        SqlAnswers("ro port on a replica", lab.dsn("ro", connect_timeout=2), True),
        SqlAnswers("PgBouncer answering", lab.dsn("pooler", connect_timeout=2), None),
        HttpOk("CSV import service answering", lab.url(CSV_IMPORT, "/health")),
        HttpOk("Alertmanager ready", lab.url("alertmanager", "/-/ready")),
        HttpOk("Alert log ready", lab.url(ALERT_LOG, "/-/ready")),
        TargetsUp(PrometheusClient(lab.url("prometheus"), timeout=2), lab.rendered_dir),
    ]


def observe(check: Check) -> Observation:
    """A probe that raises is a 'not yet', with the reason kept for the timeout message."""
    try:
        return check.probe()
    except (HarnessError, psycopg.Error, httpx.HTTPError, OSError, ValueError) as exc:
        return Observation(False, first_line(exc))


Results = list[tuple[Check, Observation]]
OnRound = Callable[[Results, float], None]


def wait_for(
    checks: Sequence[Check],
    timeout: float,
    *,
    on_round: OnRound | None = None,
    log_tail: Callable[[], str] = lambda: "",
    interval: float = 0.5,
    clock: Clock = SYSTEM_CLOCK,
) -> float:
    """Poll until every check passes in the same round; return the seconds it took."""
    start = clock.now()

    def round_() -> Results:
        results = [(check, observe(check)) for check in checks]
        if on_round is not None:
            on_round(results, clock.now() - start)
        return results

    polled = poll(
        round_,
        lambda results: all(seen.ok for _, seen in results),
        timeout=timeout,
        interval=interval,
        clock=clock,
    )
    if not polled.held:
        pending = [check.name for check, seen in polled.value if not seen.ok]
        state = "\n".join(
            f"  {'ok  ' if seen.ok else 'WAIT'} {check.name}: {seen.detail}"
            for check, seen in polled.value
        )
        raise ReadinessTimeout("; ".join(pending), timeout, state, log_tail())
    return polled.elapsed
