"""Readiness as objects: each check probes one fact; `wait_for` polls them all to a deadline.

"Containers started" proves nothing; the lab is ready when Patroni reports the
topology and every client endpoint answers on the right kind of node.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import httpx
import psycopg

from harness.clients.patroni import PatroniClient
from harness.config.render import PROXY_LINKS
from harness.core.errors import HarnessError, ReadinessTimeout, first_line
from harness.lab.project import NODES, Lab


@dataclass(frozen=True)
class Probe:
    ok: bool
    detail: str


class Check(Protocol):
    @property
    def name(self) -> str: ...

    def probe(self) -> Probe: ...


@dataclass(frozen=True)
class PatroniTopology:
    """A running leader, every other member streaming, and a synchronous standby named."""

    patroni: PatroniClient
    replicas: int = len(NODES) - 1
    name: str = "Patroni: a leader, streaming replicas, a sync standby"

    def probe(self) -> Probe:
        cluster = self.patroni.cluster()
        ok = (
            cluster.leader is not None
            and len(cluster.streaming_replicas) >= self.replicas
            and bool(cluster.sync_standbys)
        )
        return Probe(ok, cluster.describe())


@dataclass(frozen=True)
class SqlAnswers:
    """An endpoint answers a query, and the answer says it reached the right kind of node."""

    name: str
    dsn: str
    expect_recovery: bool | None  # True: a replica; False: the primary; None: any node

    def probe(self) -> Probe:
        with psycopg.connect(self.dsn, autocommit=True, prepare_threshold=None) as conn:
            row = conn.execute("select pg_is_in_recovery(), inet_server_addr()::text").fetchone()
        assert row is not None
        in_recovery, address = bool(row[0]), row[1]
        where = f"{'replica' if in_recovery else 'primary'} at {address}"
        ok = self.expect_recovery is None or in_recovery == self.expect_recovery
        return Probe(ok, where)


@dataclass(frozen=True)
class FaultProxyClean:
    """The fault proxy answers, carries every link, and none is disabled or poisoned."""

    url: str
    links: tuple[str, ...]
    name: str = "fault proxy: every link enabled, no toxics"

    def probe(self) -> Probe:
        proxies = httpx.get(f"{self.url}/proxies", timeout=2).json()
        missing = [link for link in self.links if link not in proxies]
        disabled = [n for n, p in proxies.items() if not p["enabled"]]
        poisoned = [n for n, p in proxies.items() if p["toxics"]]
        ok = not (missing or disabled or poisoned)
        detail = f"missing {missing}, disabled {disabled}, with toxics {poisoned}"
        return Probe(ok, f"{len(proxies)} links" if ok else detail)


@dataclass(frozen=True)
class HttpOk:
    """An HTTP service answers 200 on a health path."""

    name: str
    url: str

    def probe(self) -> Probe:
        status = httpx.get(self.url, timeout=2).status_code
        return Probe(status == 200, f"HTTP {status}")


def lab_checks(lab: Lab, patroni: PatroniClient) -> list[Check]:
    return [
        FaultProxyClean(lab.faultproxy_url(), tuple(link.name for link in PROXY_LINKS)),
        PatroniTopology(patroni),
        SqlAnswers("rw port on the primary", lab.dsn("rw", connect_timeout=2), False),
        SqlAnswers("ro port on a replica", lab.dsn("ro", connect_timeout=2), True),
        SqlAnswers("PgBouncer answering", lab.dsn("pooler", connect_timeout=2), None),
    ]


def probe_safely(check: Check) -> Probe:
    """A probe that raises is a 'not yet', with the reason kept for the timeout message."""
    try:
        return check.probe()
    except (HarnessError, psycopg.Error, httpx.HTTPError, OSError, ValueError) as exc:
        return Probe(False, first_line(exc))


Results = list[tuple[Check, Probe]]
OnRound = Callable[[Results, float], None]


def wait_for(
    checks: Sequence[Check],
    timeout: float,
    *,
    on_round: OnRound | None = None,
    log_tail: Callable[[], str] = lambda: "",
    interval: float = 0.5,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> float:
    """Poll until every check passes in the same round; return the seconds it took."""
    start = clock()
    while True:
        results = [(check, probe_safely(check)) for check in checks]
        elapsed = clock() - start
        if on_round is not None:
            on_round(results, elapsed)
        if all(probe.ok for _, probe in results):
            return elapsed
        if elapsed >= timeout:
            pending = [check.name for check, probe in results if not probe.ok]
            state = "\n".join(
                f"  {'ok  ' if probe.ok else 'WAIT'} {check.name}: {probe.detail}"
                for check, probe in results
            )
            raise ReadinessTimeout("; ".join(pending), timeout, state, log_tail())
        sleep(interval)
