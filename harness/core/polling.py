"""The one way the harness waits for something: poll a step until it holds or a deadline
passes. The clock is injectable, so every waiter is testable without sleeping."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")


@dataclass(frozen=True)
class Clock:
    now: Callable[[], float] = time.monotonic
    sleep: Callable[[float], None] = time.sleep


SYSTEM_CLOCK = Clock()


@dataclass(frozen=True)
class Polled(Generic[T]):
    """The last thing the step returned, how long the wait took, and whether it held."""

    value: T
    elapsed: float
    held: bool


def poll(
    step: Callable[[], T],
    until: Callable[[T], bool],
    *,
    timeout: float,
    interval: float = 0.5,
    clock: Clock = SYSTEM_CLOCK,
) -> Polled[T]:
    """Run `step` every `interval` seconds until `until(result)` holds or `timeout` passes.

    The step always runs at least once, and once more at the deadline, so a wait never
    reports a timeout without a fresh look. The caller decides what a timeout means."""
    start = clock.now()
    while True:
        value = step()
        elapsed = clock.now() - start
        if until(value):
            return Polled(value, elapsed, True)
        if elapsed >= timeout:
            return Polled(value, elapsed, False)
        clock.sleep(min(interval, timeout - elapsed))


def holds(value: bool) -> bool:
    """`until` for steps that return whether the awaited thing is true."""
    return value
