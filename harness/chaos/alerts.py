"""What monitoring said during a scenario: Alertmanager's active alerts, watched once a second
from before the fault until after the heal, so a scenario can require the alerts its fault
should trip (within a budget from the fault), their resolution (within a budget from the heal),
and the silence of those that must never fire.

An alert is told apart by its labels (PatroniLeaderChanged carries the new timeline), so one
still firing from an earlier scenario is not taken for this fault's. The webhook receiver's log
(the alert-log service) says when each firing and each resolution was notified: what a pager
would have seen, and an alert that fired and cleared between two polls.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.clients.monitoring import (
    AlertLogClient,
    AlertmanagerClient,
    FiringAlert,
    Notification,
)
from harness.core.errors import HarnessError

POLL_INTERVAL = 1.0
# Split brain in either form is never an acceptable outcome of any fault.
NEVER_FIRE = ("PatroniTwoPrimaries", "HaproxyRwTwoBackends")


@dataclass(frozen=True)
class AlertExpectation:
    name: str
    fire_within: float  # seconds from the fault
    resolve_within: float | None = None  # seconds from the heal; None: not waited for


@dataclass
class Seen:
    """One alert (name and labels) as the watcher saw it, in seconds of its clock."""

    name: str
    where: str
    first: float | None  # None: only the webhook's log saw it
    resolved: float | None = None
    notified: float | None = None  # the webhook's first firing notification
    notified_resolved: float | None = None  # and its resolved one after that

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "where": self.where,
            "fired": self.first,
            "resolved": self.resolved,
            "notified": self.notified,
            "notified_resolved": self.notified_resolved,
        }

    @property
    def start(self) -> float:
        """When this alert first showed, by either source (one of them always saw it)."""
        return min(t for t in (self.first, self.notified) if t is not None)

    @property
    def cleared(self) -> float | None:
        """When it resolved, by the source that saw it fire (the API's when it did)."""
        return self.resolved if self.first is not None else self.notified_resolved


Firing = Callable[[], list[FiringAlert]]
Notified = Callable[[float], list[Notification]]  # since, in unix seconds


@dataclass
class AlertWatch:
    """Polls `firing` in a thread; times are seconds since the watch started. With `notified`
    (the webhook's log), each alert also gets the times its firing and resolution were sent."""

    firing: Firing
    notified: Notified | None = None
    interval: float = POLL_INTERVAL
    clock: Callable[[], float] = time.monotonic
    wall: Callable[[], float] = time.time  # the log's clock: the receiver's, on this kernel
    before: set[tuple[str, str]] = field(default_factory=set)  # firing when the watch began
    seen: dict[tuple[str, str], Seen] = field(default_factory=dict)
    errors: int = 0
    polls: int = 0
    log_reads: int = 0
    log_errors: int = 0
    marks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._wall_start = self.wall()
        self._initial: set[tuple[str, str]] = set()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="alert-watch", daemon=True)

    def now(self) -> float:
        return self.clock() - self._start

    def mark(self, name: str) -> None:
        self.marks[name] = self.now()

    def __enter__(self) -> AlertWatch:
        self.before = {(a.name, a.where) for a in self._look() or []}
        self._initial = set(self.before)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.read_log()

    def _look(self) -> list[FiringAlert] | None:
        try:
            return self.firing()
        except HarnessError:
            self.errors += 1
            return None

    def poll_once(self) -> None:
        alerts = self._look()
        if alerts is None:
            return
        at = self.now()
        keys = {(a.name, a.where) for a in alerts}
        with self._lock:
            self.polls += 1
            for key in keys - self.before:
                seen = self.seen.setdefault(key, Seen(key[0], key[1], at))
                if seen.first is None:
                    seen.first = at
                seen.resolved = None
            for key, seen in self.seen.items():
                if key not in keys and seen.first is not None and seen.resolved is None:
                    seen.resolved = at
            self.before &= keys  # a pre-existing alert that resolves may fire anew

    def read_log(self) -> None:
        """Fold the webhook's notifications since the watch began into what was seen."""
        if self.notified is None:
            return
        try:
            notes = self.notified(self._wall_start - 1)
        except HarnessError:
            self.log_errors += 1
            return
        with self._lock:
            self.log_reads += 1
            for note in sorted(notes, key=lambda n: n.received):
                key, at = (note.name, note.where), note.received - self._wall_start
                if key in self._initial and key not in self.seen:
                    continue  # an earlier fault's alert, re-sent with its group
                seen = self.seen.get(key)
                if note.status == "firing":
                    if seen is None:
                        self.seen[key] = Seen(key[0], key[1], None, notified=at)
                    elif seen.notified is None:
                        seen.notified = at
                elif seen and seen.notified is not None and seen.notified_resolved is None:
                    seen.notified_resolved = at

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()

    def wait_resolved(self, names: set[str], timeout: float) -> None:
        """Until every alert of these names that fired has resolved, and the log has its
        resolution too (it comes a group interval later), or the timeout."""
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            self.read_log()
            with self._lock:
                open_ = [s for s in self.seen.values() if s.name in names and not self._closed(s)]
            if not open_:
                return
            time.sleep(self.interval)

    def _closed(self, s: Seen) -> bool:
        api = s.first is None or s.resolved is not None
        log = self.notified is None or s.notified is None or s.notified_resolved is not None
        return api and log

    def alerts(self) -> list[Seen]:
        with self._lock:
            return sorted(self.seen.values(), key=lambda s: s.start)


def lab_firing(url: str) -> Firing:
    client = AlertmanagerClient(url, timeout=2)
    return client.firing


def lab_notified(url: str) -> Notified:
    client = AlertLogClient(url, timeout=2)
    return client.notifications


def alert_failures(
    watch: AlertWatch, expect: tuple[AlertExpectation, ...], never: tuple[str, ...]
) -> list[str]:
    """Each broken promise, in words; nothing when monitoring kept them all."""
    if watch.polls == 0:
        return [f"Alertmanager never answered ({watch.errors} tries): no alert could be checked"]
    failures = []
    if watch.notified is not None and watch.log_reads == 0:
        failures.append(f"the alert log never answered ({watch.log_errors} tries)")
    logged = watch.notified is not None and watch.log_reads > 0
    fault, heal = watch.marks["fault"], watch.marks["heal"]
    for e in expect:
        fired = [s for s in watch.alerts() if s.name == e.name and s.start >= fault - 1]
        if not fired:
            failures.append(f"alert {e.name} did not fire")
            continue
        first = min(fired, key=lambda s: s.start)
        if first.start - fault > e.fire_within:
            failures.append(
                f"alert {e.name} fired {first.start - fault:.1f} s after the fault "
                f"(budget {e.fire_within:.0f} s)"
            )
        for s in fired:
            if logged and s.notified is None:
                failures.append(f"alert {e.name} ({s.where}) fired but was never notified")
        if e.resolve_within is None:
            continue
        for s in fired:
            cleared = s.cleared
            if cleared is None or cleared - heal > e.resolve_within:
                when = "never" if cleared is None else f"{cleared - heal:.1f} s after the heal"
                failures.append(
                    f"alert {e.name} ({s.where}) resolved {when} (budget {e.resolve_within:.0f} s)"
                )
            elif logged and s.notified is not None and s.notified_resolved is None:
                failures.append(
                    f"alert {e.name} ({s.where}) resolved but its resolution was never notified"
                )
    for s in watch.alerts():
        if s.name in never:
            failures.append(f"alert {s.name} ({s.where}) fired, which it must never do here")
    return failures
