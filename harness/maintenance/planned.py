"""Planned work on the running cluster, each step checked before anything changes.

Where the leader moves, PgBouncer is paused first: running transactions finish, its server
connections close, new queries wait in PgBouncer. Patroni then switches over, we wait until
HAProxy routes rw to the new leader and a write there succeeds, and PgBouncer resumes, on
fresh server connections to the new leader. Clients of PgBouncer see a delay, not an error.
PgBouncer is resumed whatever happens after the pause (errors, Ctrl-C).

Refusals (a member that is not a healthy replica, work already in progress, nothing
pending) come before the pause: the cluster is left untouched.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass

import httpx
import psycopg

from harness.clients.haproxy import fetch_backends
from harness.clients.patroni import Cluster, Member
from harness.clients.pgbouncer import PgBouncerAdmin, Pooler
from harness.core.errors import ConfigError, HarnessError, StateError
from harness.core.polling import SYSTEM_CLOCK, Clock, poll
from harness.core.progress import Say, silent
from harness.faults.controller import Faults
from harness.faults.model import Fault
from harness.lab.topology import EndpointName
from harness.stack.lifecycle import Stack

PAUSE_TIMEOUT = 10.0  # s a transaction may keep PgBouncer from pausing before we give up
SETTLED_STATES = ("running", "streaming")
# Patroni's states of a member in the middle of something; a stopped or failed member is not
# busy, only unhealthy (a switchover to another replica can still go ahead).
BUSY_STATES = (
    "starting",
    "stopping",
    "restarting",
    "creating replica",
    "initializing new cluster",
    "running custom bootstrap script",
)

Routing = Callable[[], list[str]]  # the nodes HAProxy's rw listener has UP
Writable = Callable[[EndpointName], bool]  # a write-capable primary answers on the endpoint


@dataclass(frozen=True)
class SwitchoverResult:
    leader: str
    candidate: str
    paused: float  # s PgBouncer held its clients' queries
    switchover: float  # s from the pause until Patroni's API answered (a whole-second poll)
    routed: float  # s from the pause until HAProxy routed rw to the new leader


@dataclass(frozen=True)
class RestartResult:
    restarted: list[str]  # in order
    switchover: SwitchoverResult | None  # when the leader's restart moved the leadership


def in_progress(cluster: Cluster) -> str:
    """Why other work looks under way, or "": a scheduled switchover, a member not settled."""
    if cluster.scheduled_switchover:
        return f"a switchover is scheduled for {cluster.scheduled_switchover}"
    unsettled = [f"{m.name} is {m.state}" for m in cluster.members if m.state in BUSY_STATES]
    if unsettled:
        return ", ".join(unsettled)
    if cluster.leader is None:
        return f"the cluster has no single running leader ({cluster.describe()})"
    return ""


def refuse_if_busy(cluster: Cluster) -> Member:
    """The leader, when nothing else is going on."""
    busy = in_progress(cluster)
    if busy or cluster.leader is None:
        raise StateError(
            f"the cluster is not settled: {busy}; nothing was changed",
            "wait for other work to finish: `harness status` shows every member "
            "running or streaming when it has",
        )
    return cluster.leader


def choose_candidate(cluster: Cluster, to: str | None, synchronous: bool) -> tuple[str, str]:
    """(leader, candidate) for a switchover, or a refusal naming what would work."""
    leader = refuse_if_busy(cluster)
    replicas = cluster.streaming_replicas
    eligible = cluster.sync_standbys if synchronous else replicas
    names = ", ".join(m.name for m in eligible) or "none"
    if to is None:
        if not eligible:
            raise StateError(
                f"no replica can take over now ({cluster.describe()}); nothing was changed",
                "wait for a replica to stream (`harness status`)",
            )
        return leader.name, min(eligible, key=lambda m: m.lag or 0).name
    member = cluster.member(to)
    if member is None:
        raise ConfigError(
            f"{to!r} is not a member of the cluster",
            f"members: {', '.join(m.name for m in cluster.members)}",
        )
    if member.is_leader:
        raise ConfigError(
            f"{to} is the leader already", f"name a replica that can take over: {names}"
        )
    if member.state != "streaming":
        raise StateError(
            f"{to} is not a healthy replica ({member.role}/{member.state}); nothing was changed",
            f"wait until it streams (`harness status`), or choose: {names}",
        )
    if synchronous and not member.is_sync_standby:
        raise ConfigError(
            f"{to} is an asynchronous replica: in synchronous mode Patroni hands the "
            "leadership only to the synchronous standby",
            f"use --to {names}, or leave --to out",
        )
    return leader.name, member.name


class Background:
    """One call on a thread: when it finished, or what it raised, for the caller to re-raise."""

    def __init__(self, call: Callable[[], None], clock: Clock) -> None:
        self._call, self._clock = call, clock
        self._error: BaseException | None = None
        self._ended: float | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self._call()
        except BaseException as exc:  # handed to the caller's thread
            self._error = exc
        self._ended = self._clock.now()

    def start(self) -> None:
        self._thread.start()

    def raise_if_failed(self) -> None:
        if self._error is not None:
            raise self._error

    def result(self, timeout: float) -> float:
        """When the call ended; its error raised here."""
        self._thread.join(timeout)
        self.raise_if_failed()
        if self._ended is None:
            raise HarnessError(
                f"Patroni's switchover request did not answer within {timeout:g} s",
                "`harness status` shows where the cluster stands",
            )
        return self._ended


class Planned:
    """Planned work on one stack; the pooler, the routing view and the write probe are seams."""

    def __init__(
        self,
        stack: Stack,
        *,
        faults: Faults | None = None,
        pooler: Pooler | None = None,
        routing: Routing | None = None,
        writable: Writable | None = None,
        clock: Clock = SYSTEM_CLOCK,
        say: Say = silent,
    ) -> None:
        self.stack = stack
        self.faults = faults or Faults(stack)
        self.pooler = pooler or PgBouncerAdmin(stack.lab.dsn("pooler", dbname="pgbouncer"))
        self.routing = routing or self._rw_routing
        self.writable = writable or self._writable
        self.clock = clock
        self.say = say
        self.urls = stack.lab.member_urls()

    # -- what is observed --------------------------------------------------------------------

    def _rw_routing(self) -> list[str]:
        try:
            backends = fetch_backends(self.stack.lab.url("stats", "/;csv"), timeout=0.5)
        except (httpx.HTTPError, ValueError):
            return []
        return [b.server for b in backends if b.listener == "rw" and b.up]

    def _writable(self, endpoint: EndpointName) -> bool:
        try:
            dsn = self.stack.lab.dsn(endpoint, connect_timeout=2)
            with psycopg.connect(dsn, autocommit=True, prepare_threshold=None) as conn:
                row = conn.execute("SELECT pg_is_in_recovery()").fetchone()
        except psycopg.Error:
            return False
        return row is not None and row[0] is False

    def cluster(self) -> tuple[Cluster, bool]:
        """The cluster, and whether Patroni runs in synchronous mode."""
        with self.stack.patroni() as patroni:
            return patroni.cluster(), bool(patroni.config().get("synchronous_mode"))

    def wait(
        self, what: str, check: Callable[[], bool], timeout: float, last: Callable[[], str]
    ) -> float:
        polled = poll(check, bool, timeout=timeout, interval=0.1, clock=self.clock)
        if not polled.held:
            raise HarnessError(
                f"timed out after {timeout:g} s waiting for {what} ({last()})",
                "`harness status` shows the cluster; `harness logs` what its members said",
            )
        return polled.elapsed

    # -- switchover --------------------------------------------------------------------------

    def switchover(self, to: str | None = None, timeout: float = 60.0) -> SwitchoverResult:
        """Hand the leadership to `to` (default: the synchronous standby), PgBouncer paused."""
        cluster, synchronous = self.cluster()
        leader, candidate = choose_candidate(cluster, to, synchronous)
        if self.pooler.paused():
            raise StateError(
                "PgBouncer is paused already: other planned work is under way; nothing was changed",
                "wait for it to finish; if none is, send RESUME on PgBouncer's admin console",
            )
        return self._switch(leader, candidate, timeout)

    def _switch(self, leader: str, candidate: str, timeout: float) -> SwitchoverResult:
        """Patroni's API answers only on a whole second after the new leader is in place (it
        polls once a second), so it is asked on a thread and PgBouncer resumes as soon as
        HAProxy routes rw to the candidate and a write there succeeds."""
        self.say(f"pausing PgBouncer, then switching over {leader} -> {candidate}")
        start = self.clock.now()
        self.pooler.pause(PAUSE_TIMEOUT)
        request = Background(self.faults.planned_switchover(candidate).inject, self.clock)
        try:
            request.start()

            def routed_to_candidate() -> bool:
                request.raise_if_failed()  # Patroni refused: no point waiting
                return self.routing() == [candidate] and self.writable("rw")

            self.wait(
                f"HAProxy to route rw to {candidate}",
                routed_to_candidate,
                timeout,
                lambda: f"rw UP on {', '.join(self.routing()) or 'nothing'}",
            )
            routed = self.clock.now()
        finally:
            self.pooler.resume()
        resumed = self.clock.now()
        answered = request.result(timeout)
        self.wait(
            "PgBouncer to reach the new leader",
            lambda: self.writable("pooler"),
            timeout,
            lambda: "no write-capable primary through PgBouncer",
        )
        self.say(f"{candidate} leads; PgBouncer held queries for {resumed - start:.2f} s")
        return SwitchoverResult(
            leader, candidate, resumed - start, answered - start, routed - start
        )

    # -- rolling restart ---------------------------------------------------------------------

    def _restart_member(self, name: str, timeout: float) -> None:
        self.say(f"restarting {name}")
        with self.stack.patroni() as patroni:
            patroni.restart(self.urls[name])

            def settled() -> bool:
                member = patroni.cluster().member(name)
                return (
                    member is not None
                    and member.state in SETTLED_STATES
                    and not member.pending_restart
                )

            self.wait(f"{name} to come back", settled, timeout, patroni.cluster().describe)

    def rolling_restart(self, timeout: float = 120.0) -> RestartResult:
        """Members whose settings wait for a restart: replicas one by one, then a switchover
        away from the leader, then the old leader."""
        cluster, _ = self.cluster()
        leader = refuse_if_busy(cluster)
        pending = [m.name for m in cluster.members if m.pending_restart]
        if not pending:
            raise StateError(
                "no member has a restart pending: nothing to do, nothing was changed",
                "a setting that needs a restart shows as pending in Patroni (`harness status`)",
            )
        if leader.name in pending and self.pooler.paused():
            raise StateError(
                "PgBouncer is paused already: other planned work is under way; nothing was changed",
                "wait for it to finish; if none is, send RESUME on PgBouncer's admin console",
            )
        restarted: list[str] = []
        for name in pending:
            if name != leader.name:
                self._restart_member(name, timeout)
                restarted.append(name)
        moved = None
        if leader.name in pending:
            old, candidate = self._candidate_when_settled(timeout)
            moved = self._switch(old, candidate, timeout)
            self.wait(
                f"{old} to rejoin as a replica",
                lambda: self._state(old) == "streaming",
                timeout,
                lambda: self._state(old),
            )
            if self._pending(old):  # a demotion restarts PostgreSQL: often nothing is left
                self._restart_member(old, timeout)
            restarted.append(old)
        return RestartResult(restarted, moved)

    def set_pending(self, parameter: str, value: object, timeout: float = 30.0) -> object:
        """Change a setting PostgreSQL reads only at start in Patroni's configuration and wait
        until every member reports a restart pending; returns the value it had (None: unset)."""
        with self.stack.patroni() as patroni:
            before = patroni.config().get("postgresql", {}).get("parameters", {}).get(parameter)
            patroni.patch_config({"postgresql": {"parameters": {parameter: value}}})
            self.wait(
                f"every member to report {parameter} pending a restart",
                lambda: all(m.pending_restart for m in patroni.cluster().members),
                timeout,
                lambda: patroni.cluster().describe(),
            )
        return before

    def _candidate_when_settled(self, timeout: float) -> tuple[str, str]:
        """A restarted synchronous standby leaves the cluster without one for a moment, until
        Patroni names it (or another) again: wait for a candidate instead of refusing."""
        chosen: list[tuple[str, str]] = []

        def candidate() -> bool:
            try:
                cluster, synchronous = self.cluster()
                chosen[:] = [choose_candidate(cluster, None, synchronous)]
            except StateError:
                return False
            return True

        self.wait("a replica that can take over", candidate, timeout, lambda: "none yet")
        return chosen[0]

    def _pending(self, name: str) -> bool:
        with self.stack.patroni() as patroni:
            member = patroni.cluster().member(name)
        return member is not None and member.pending_restart

    def _state(self, name: str) -> str:
        with self.stack.patroni() as patroni:
            member = patroni.cluster().member(name)
        return member.state if member else "absent"

    # -- reinit ------------------------------------------------------------------------------

    def reinit(self, name: str, timeout: float = 300.0) -> float:
        """Rebuild replica `name` from the leader; the leader does not move. Returns seconds."""
        cluster, _ = self.cluster()
        member = cluster.member(name)
        if member is None:
            raise ConfigError(
                f"{name!r} is not a member of the cluster",
                f"members: {', '.join(m.name for m in cluster.members)}",
            )
        if member.is_leader:
            raise ConfigError(
                f"{name} is the leader: only a replica can be rebuilt from it",
                "switch over first (`harness switchover`), then rebuild the old leader",
            )
        refuse_if_busy(cluster)
        url = self.urls[name]
        with self.stack.patroni() as patroni:
            before = patroni.member_status(url).get("postmaster_start_time")
            self.say(f"rebuilding {name} from the leader")
            start = self.clock.now()
            patroni.reinitialize(url)

            def rebuilt() -> bool:
                try:
                    status = patroni.member_status(url)
                except httpx.HTTPError:
                    return False
                return (
                    status.get("postmaster_start_time") != before
                    and status.get("state") in SETTLED_STATES
                    and self._state(name) == "streaming"
                )

            self.wait(f"{name} to be rebuilt and streaming", rebuilt, timeout, cluster.describe)
        return self.clock.now() - start


@dataclass
class PlannedWork(Fault):
    """Planned work as a chaos scenario's step: done on inject, nothing to heal (it leaves
    the cluster healthy, and the runner's backstop covers the rest)."""

    description: str
    work: Callable[[], object]

    def inject(self) -> None:
        self.work()

    def heal(self) -> None:
        pass


@dataclass
class RollingRestartWork(Fault):
    """A setting that needs a restart changed and rolled out; healed by rolling the old value
    out the same way, so the scenario leaves the cluster's settings as it found them."""

    planned: Planned
    parameter: str
    value: str
    description: str = ""
    before: object = None
    changed: bool = False

    def inject(self) -> None:
        self.before = self.planned.set_pending(self.parameter, self.value)
        self.changed = True
        self.planned.rolling_restart()

    def heal(self) -> None:
        if not self.changed:
            return
        self.planned.set_pending(self.parameter, self.before)
        self.changed = False
        self.planned.rolling_restart()


def planned_rolling_restart(faults: Faults) -> RollingRestartWork:
    """shared_buffers 16 MB up (a restart on every member), then back."""
    leader = faults.resolve_node("leader")
    current = faults.stack.node_sql(
        leader, "SELECT setting::bigint * 8 / 1024 FROM pg_settings WHERE name = 'shared_buffers'"
    )
    value = f"{int(current) + 16}MB"
    planned = Planned(faults.stack, faults=faults)
    return RollingRestartWork(
        planned,
        "shared_buffers",
        value,
        f"rolling restart for shared_buffers {current}MB -> {value}",
    )


def planned_switchover(faults: Faults) -> PlannedWork:
    planned = Planned(faults.stack, faults=faults)
    return PlannedWork("switchover with PgBouncer paused", planned.switchover)


def planned_reinit(faults: Faults) -> PlannedWork:
    """The asynchronous replica (or any replica) rebuilt from the leader."""
    replica = faults.resolve_node("replica")
    planned = Planned(faults.stack, faults=faults)
    return PlannedWork(f"reinit {replica}", lambda: planned.reinit(replica))
