"""What monitoring said during a scenario: Alertmanager's active alerts, watched once a second
from before the fault until after the heal, so a scenario can require the alerts its fault
should trip (within a budget from the fault), their resolution (within a budget from the heal),
and the silence of those that must never fire.

An alert is told apart by its labels (PatroniLeaderChanged carries the new timeline), so one
still firing from an earlier scenario is not taken for this fault's.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from harness.clients.monitoring import AlertmanagerClient, FiringAlert
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
    first: float
    resolved: float | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "where": self.where,
            "fired": self.first,
            "resolved": self.resolved,
        }


Firing = Callable[[], list[FiringAlert]]


@dataclass
class AlertWatch:
    """Polls `firing` in a thread; times are seconds since the watch started."""

    firing: Firing
    interval: float = POLL_INTERVAL
    clock: Callable[[], float] = time.monotonic
    before: set[tuple[str, str]] = field(default_factory=set)  # firing when the watch began
    seen: dict[tuple[str, str], Seen] = field(default_factory=dict)
    errors: int = 0
    polls: int = 0
    marks: dict[str, float] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self._start = self.clock()
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._loop, name="alert-watch", daemon=True)

    def now(self) -> float:
        return self.clock() - self._start

    def mark(self, name: str) -> None:
        self.marks[name] = self.now()

    def __enter__(self) -> AlertWatch:
        self.before = {(a.name, a.where) for a in self._look() or []}
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=5)

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
                if key not in self.seen or self.seen[key].resolved is not None:
                    self.seen.setdefault(key, Seen(key[0], key[1], at)).resolved = None
            for key, seen in self.seen.items():
                if key not in keys and seen.resolved is None:
                    seen.resolved = at
            self.before &= keys  # a pre-existing alert that resolves may fire anew

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self.poll_once()

    def wait_resolved(self, names: set[str], timeout: float) -> None:
        """Until every alert of these names that fired has resolved, or the timeout."""
        deadline = self.clock() + timeout
        while self.clock() < deadline:
            with self._lock:
                open_ = [s for s in self.seen.values() if s.name in names and s.resolved is None]
            if not open_:
                return
            time.sleep(self.interval)

    def alerts(self) -> list[Seen]:
        with self._lock:
            return sorted(self.seen.values(), key=lambda s: s.first)


def lab_firing(url: str) -> Firing:
    client = AlertmanagerClient(url, timeout=2)
    return client.firing


def alert_failures(
    watch: AlertWatch, expect: tuple[AlertExpectation, ...], never: tuple[str, ...]
) -> list[str]:
    """Each broken promise, in words; nothing when monitoring kept them all."""
    if watch.polls == 0:
        return [f"Alertmanager never answered ({watch.errors} tries): no alert could be checked"]
    fault, heal = watch.marks["fault"], watch.marks["heal"]
    failures = []
    for e in expect:
        fired = [s for s in watch.alerts() if s.name == e.name and s.first >= fault - 1]
        if not fired:
            failures.append(f"alert {e.name} did not fire")
            continue
        first = min(fired, key=lambda s: s.first)
        if first.first - fault > e.fire_within:
            failures.append(
                f"alert {e.name} fired {first.first - fault:.1f} s after the fault "
                f"(budget {e.fire_within:.0f} s)"
            )
        if e.resolve_within is not None:
            late = [s for s in fired if s.resolved is None or s.resolved - heal > e.resolve_within]
            for s in late:
                when = (
                    "never" if s.resolved is None else f"{s.resolved - heal:.1f} s after the heal"
                )
                failures.append(
                    f"alert {e.name} ({s.where}) resolved {when} (budget {e.resolve_within:.0f} s)"
                )
    for s in watch.alerts():
        if s.name in never:
            failures.append(f"alert {s.name} ({s.where}) fired, which it must never do here")
    return failures
