from __future__ import annotations

from dataclasses import dataclass, field

import pytest

from harness.core.errors import ReadinessTimeout
from harness.core.polling import Clock
from harness.stack.readiness import Observation, wait_for


@dataclass
class Scripted:
    """A check that passes from its n-th probe on, or raises until then."""

    name: str
    passes_from: int
    raises: bool = False
    probes: int = field(default=0)

    def probe(self) -> Observation:
        self.probes += 1
        if self.probes >= self.passes_from:
            return Observation(True, "fine")
        if self.raises:
            raise OSError("connection refused")
        return Observation(False, f"not yet ({self.probes})")


class FakeClock:
    """Time that passes only when a waiter sleeps."""

    def __init__(self) -> None:
        self.time = 0.0

    def now(self) -> float:
        return self.time

    def sleep(self, seconds: float) -> None:
        self.time += seconds

    def clock(self) -> Clock:
        return Clock(self.now, self.sleep)


def test_waits_until_every_check_passes_in_one_round() -> None:
    clock = FakeClock()
    checks = [Scripted("a", 2), Scripted("b", 4, raises=True)]
    elapsed = wait_for(checks, 10, clock=clock.clock(), interval=1)
    assert elapsed == 3.0
    assert [c.probes for c in checks] == [4, 4]


def test_timeout_says_what_was_awaited_what_was_seen_and_the_logs() -> None:
    clock = FakeClock()
    checks = [Scripted("leader", 1), Scripted("replicas", 99, raises=True)]
    with pytest.raises(ReadinessTimeout) as info:
        wait_for(checks, 5, clock=clock.clock(), interval=1, log_tail=lambda: "pg1 | x")
    err = info.value
    assert err.awaited == "replicas"
    assert "ok   leader: fine" in err.last_state
    assert "WAIT replicas: connection refused" in err.last_state
    assert "pg1 | x" in err.message and "timed out after 5 s" in err.message


def test_progress_is_reported_every_round() -> None:
    clock = FakeClock()
    rounds: list[float] = []
    wait_for(
        [Scripted("a", 3)],
        10,
        clock=clock.clock(),
        interval=1,
        on_round=lambda results, elapsed: rounds.append(elapsed),
    )
    assert rounds == [0.0, 1.0, 2.0]
