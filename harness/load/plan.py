"""What a load run is asked to do, checked before anything starts: users, ramp, duration,
path, processes, think time and the thresholds it is judged by."""

from __future__ import annotations

from dataclasses import dataclass

from harness.core.errors import ConfigError
from harness.lab.topology import PRIMARY_PATHS, Via
from harness.load.report import ALL, EACH, Limit

# The plans' bar is the aggregate; each request type is held to it too, or a slow type
# hides behind the fast ones (dashboard p95 151 ms under an aggregate of 58 ms).
DEFAULT_LIMITS = (
    Limit(ALL, "p95", 100.0),
    Limit(EACH, "p95", 100.0),
    Limit(ALL, "errors", 0.001),
)
MAX_SECONDS = 2 * 3600  # no run goes longer, whatever was asked


@dataclass(frozen=True)
class LoadPlan:
    users: int = 100
    spawn_rate: float = 10.0  # users started per second
    duration: float = 180.0  # s in all, the ramp included
    via: Via = "haproxy"  # the primary path; stale-tolerant reads always use the ro port
    processes: int = 1  # load-generating processes (Locust's --processes)
    pool_size: int = 40  # connections per endpoint and process
    wait: tuple[float, float] = (0.2, 1.0)  # think time between a user's requests, s
    limits: tuple[Limit, ...] = DEFAULT_LIMITS

    def __post_init__(self) -> None:
        problems = [
            (self.users < 1, "--users must be at least 1"),
            (self.spawn_rate <= 0, "--spawn-rate must be above 0"),
            (
                not 10 <= self.duration <= MAX_SECONDS,
                f"--duration must be between 10 s and {MAX_SECONDS} s",
            ),
            (
                self.ramp >= self.duration,
                f"the ramp ({self.ramp:.0f} s = users / spawn rate) leaves no steady state in "
                f"{self.duration:.0f} s",
            ),
            (self.via not in PRIMARY_PATHS, f"--via must be one of {', '.join(PRIMARY_PATHS)}"),
            (not 1 <= self.processes <= 64, "--processes must be between 1 and 64"),
            (self.pool_size < 1, "--pool-size must be at least 1"),
            (not 0 <= self.wait[0] <= self.wait[1], "--wait must be MIN,MAX with 0 <= MIN <= MAX"),
        ]
        for wrong, message in problems:
            if wrong:
                raise ConfigError(message, "`harness load --help` explains every option")

    @property
    def ramp(self) -> float:
        return self.users / self.spawn_rate


def parse_wait(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--wait {text!r} is not MIN,MAX in seconds", "e.g. 0.2,1.0") from None
    return low, high
