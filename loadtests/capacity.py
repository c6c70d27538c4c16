"""A stepping load shape for `harness load --find-capacity`: START users, then STEP more
every STEP_SECONDS, up to CEILING; given to Locust next to locustfile.py
(`-f locustfile.py,capacity.py`) so the plain run keeps its fixed user count.

The shape records each step's boundaries in steps.csv (step, users, when the step began,
when its users were all running, epoch seconds), so the harness cuts each step's window
from the request logs with the same percentiles as every other load report, and judges a
step as soon as it ends. The harness stops Locust at the first step that breaks a limit.

Settings from the environment (`harness load --find-capacity` sets them):
    GARDENLAB_LOAD_STEPS       "START,STEP,CEILING,STEP_SECONDS,SPAWN_RATE"
    GARDENLAB_LOAD_LOG_DIR     where steps.csv goes
"""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

from locust import LoadTestShape

STEPS_FILE = "steps.csv"
FIELDS = ("step", "users", "began", "reached")


def step_settings() -> tuple[int, int, int, float, float]:
    text = os.environ.get("GARDENLAB_LOAD_STEPS")
    if not text:
        raise SystemExit("GARDENLAB_LOAD_STEPS is not set: run `harness load --find-capacity`")
    start, step, ceiling, seconds, rate = text.split(",")
    return int(start), int(step), int(ceiling), float(seconds), float(rate)


def users_at(elapsed: float, start: int, step: int, ceiling: int, seconds: float) -> int | None:
    """The user count of the step running `elapsed` seconds in; None once past the ceiling."""
    users = start + int(elapsed // seconds) * step
    return users if users <= ceiling else None


class CapacitySteps(LoadTestShape):
    """START, START+STEP, ... users, each for STEP_SECONDS; stops after the ceiling's step."""

    def __init__(self) -> None:
        super().__init__()  # type: ignore[no-untyped-call]
        self.start, self.step, self.ceiling, self.seconds, self.rate = step_settings()
        self.path = Path(os.environ.get("GARDENLAB_LOAD_LOG_DIR", ".")) / STEPS_FILE
        self.current = 0  # the step's user count; 0 before the first
        self.reached = True
        self.began = 0.0

    def _write(self, users: int, began: float, reached: float | None) -> None:
        new = not self.path.exists()
        with self.path.open("a", newline="") as f:
            out = csv.writer(f)
            if new:
                out.writerow(FIELDS)
            index = (users - self.start) // self.step
            out.writerow(
                [index, users, f"{began:.3f}", "" if reached is None else f"{reached:.3f}"]
            )

    def tick(self) -> tuple[int, float] | None:
        elapsed = time.perf_counter() - self.start_time
        users = users_at(elapsed, self.start, self.step, self.ceiling, self.seconds)
        if users is None:
            return None
        if users != self.current:
            self.current, self.reached, self.began = users, False, time.time()
            self._write(users, self.began, None)
        running = self.runner.user_count if self.runner else 0
        if not self.reached and running >= users:
            self.reached = True
            self._write(users, self.began, time.time())  # the same step again, now reached
        return users, self.rate
