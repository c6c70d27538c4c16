"""Capacity at the SLO: the user count stepped (loadtests/capacity.py, a Locust load shape)
until a step breaks a limit, each step judged on its own window by the same percentiles and
limits as every load report; the last step that held is the capacity.

The shape records when each step began and when its users were all running; a step's window
runs from then to its end, so the spawning between steps is never judged. The harness judges
a step as soon as it ends and stops Locust at the first one that breaks a limit.
"""

from __future__ import annotations

import csv
import json
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from harness.config.render import TEXTFILE_DIR
from harness.core.errors import ConfigError, HarnessError
from harness.core.polling import poll
from harness.core.progress import Say
from harness.load.locust import (
    LOCUSTFILE,
    STOP_GRACE,
    LoadTarget,
    LocustProcess,
    headless_command,
    locust_environment,
    prepare_directory,
)
from harness.load.pgbench import PgbenchPlan, PgbenchResult
from harness.load.pgbench import run as run_pgbench
from harness.load.plan import MAX_SECONDS, LoadPlan
from harness.load.report import (
    ALL,
    Limit,
    RequestRecord,
    Stats,
    Window,
    breaches,
    read_request_logs,
    stats_json,
    window_stats,
)
from harness.load.run import preflight
from harness.load.servers import ServerUse, ServerWatch, summary_lines
from harness.reports import capacity as capacity_plot
from harness.stack.lifecycle import Stack

SHAPEFILE = LOCUSTFILE.parent / "capacity.py"
STEPS_FILE = "steps.csv"  # written by the shape (loadtests/capacity.py)
MAX_STEPS = 40
MIN_STEP_SECONDS = 10.0
# s after a step's end before it is judged while Locust runs: a request is logged when it ends,
# and one started in the step may wait for a connection up to the pool's 5 s timeout.
SETTLE = 6.0
FLUSH_ROWS = "1"  # the users write each request to their log at once, so a step can be judged


@dataclass(frozen=True)
class CapacityPlan:
    """The steps and the load each one runs: the base plan's path, processes, pool, think
    time, spawn rate and limits; its user count and duration are the steps'."""

    base: LoadPlan
    start: int = 50
    step: int = 50
    ceiling: int = 400
    step_seconds: float = 30.0
    pgbench: PgbenchPlan | None = field(default_factory=PgbenchPlan)

    def __post_init__(self) -> None:
        hint = "e.g. --start 50 --step 50 --ceiling 400 --step-duration 30s"
        count = (self.ceiling - self.start) // self.step + 1 if self.step >= 1 else 0
        spawn = max(self.start, self.step) / self.base.spawn_rate
        problems = [
            (self.start < 1, f"--start {self.start}: a step needs at least 1 user"),
            (self.step < 1, f"--step {self.step}: the user count must grow by at least 1"),
            (
                self.ceiling < self.start,
                f"--ceiling {self.ceiling} is below --start {self.start}: no step to run",
            ),
            (
                count > MAX_STEPS,
                f"{count} steps from {self.start} to {self.ceiling} by {self.step}: at most "
                f"{MAX_STEPS}",
            ),
            (
                self.step_seconds < MIN_STEP_SECONDS,
                f"--step-duration {self.step_seconds:g} s: at least {MIN_STEP_SECONDS:g} s",
            ),
            (
                spawn > self.step_seconds / 2,
                f"starting {max(self.start, self.step)} users at {self.base.spawn_rate:g}/s "
                f"takes {spawn:.0f} s, more than half of a {self.step_seconds:g} s step",
            ),
            (
                count * self.step_seconds > MAX_SECONDS,
                f"{count} steps of {self.step_seconds:g} s exceed {MAX_SECONDS} s",
            ),
        ]
        for wrong, message in problems:
            if wrong:
                raise ConfigError(message, hint)

    @property
    def steps(self) -> list[int]:
        return list(range(self.start, self.ceiling + 1, self.step))

    @property
    def seconds(self) -> float:
        return len(self.steps) * self.step_seconds

    @property
    def load(self) -> LoadPlan:
        return replace(self.base, users=self.steps[-1], duration=self.seconds)

    def shape_setting(self) -> str:
        """GARDENLAB_LOAD_STEPS for the shape."""
        return (
            f"{self.start},{self.step},{self.ceiling},{self.step_seconds:g},"
            f"{self.base.spawn_rate:g}"
        )


# -- the steps -----------------------------------------------------------------------------


@dataclass(frozen=True)
class StepMark:
    """A step's boundaries as the shape recorded them (epoch seconds)."""

    index: int
    users: int
    began: float
    reached: float | None  # when all its users were running; None if not (yet)


def read_marks(directory: Path) -> list[StepMark]:
    """The shape writes a step when it begins and again when it is reached: the last wins.
    Only whole lines count: the shape may be writing one while it is read."""
    path = directory / STEPS_FILE
    if not path.exists():
        return []
    lines = [line for line in path.read_text().splitlines(keepends=True) if line.endswith("\n")]
    marks: dict[int, StepMark] = {}
    for row in csv.DictReader(lines):
        index, reached = int(row["step"]), row["reached"]
        marks[index] = StepMark(
            index, int(row["users"]), float(row["began"]), float(reached) if reached else None
        )
    return sorted(marks.values(), key=lambda m: m.index)


@dataclass(frozen=True)
class StepResult:
    users: int
    window: Window
    stats: list[Stats]
    failures: list[str]

    @property
    def held(self) -> bool:
        return not self.failures

    @property
    def total(self) -> Stats:
        return next(s for s in self.stats if s.name == ALL)

    @property
    def slowest(self) -> Stats | None:
        """The request type with the highest p95: the one nearest its limit."""
        rows = [s for s in self.stats if s.name != ALL and s.count and s.p95 == s.p95]
        return max(rows, key=lambda s: s.p95, default=None)

    def to_json(self) -> dict[str, Any]:
        return {
            "users": self.users,
            "window": asdict(self.window),
            "held": self.held,
            "failures": self.failures,
            "stats": stats_json(self.stats),
        }


def judge_step(
    mark: StepMark, step_seconds: float, records: Sequence[RequestRecord], limits: Sequence[Limit]
) -> StepResult:
    """A step is judged from when its users were all running to its end; a step whose users
    never all ran has already broken: the generator or the stack could not keep up."""
    end = mark.began + step_seconds
    name = f"{mark.users} users"
    if mark.reached is None or mark.reached >= end:
        window = Window(name, mark.began, end)
        stats = window_stats(records, window)
        return StepResult(mark.users, window, stats, [f"the {mark.users} users never all ran"])
    window = Window(name, mark.reached, end)
    stats = window_stats(records, window)
    failures = list(breaches(stats, limits))
    if next(s for s in stats if s.name == ALL).count == 0:
        failures.append("no request completed")
    return StepResult(mark.users, window, stats, failures)


def judge(
    marks: Sequence[StepMark],
    step_seconds: float,
    records: Sequence[RequestRecord],
    limits: Sequence[Limit],
    now: float,
    settle: float = SETTLE,
) -> list[StepResult]:
    """Every step over `settle` s before `now`, in order, up to and including the first that
    broke; a step cut short (Locust stopped in it) is never judged."""
    judged: list[StepResult] = []
    for mark in marks:
        if mark.began + step_seconds + settle > now:
            break
        judged.append(judge_step(mark, step_seconds, records, limits))
        if not judged[-1].held:
            break
    return judged


def knee(steps: Sequence[StepResult]) -> StepResult | None:
    """The last step that held before the first that broke (steps come from `judge`)."""
    held = [s for s in steps if s.held]
    return held[-1] if held else None


# -- the run -------------------------------------------------------------------------------


@dataclass
class CapacityResult:
    plan: CapacityPlan
    directory: Path
    steps: list[StepResult]
    generator_cpu: float
    servers: ServerUse | None = None
    pgbench: PgbenchResult | None = None
    pgbench_error: str = ""

    @property
    def knee(self) -> StepResult | None:
        return knee(self.steps)

    @property
    def broke(self) -> StepResult | None:
        return next((s for s in self.steps if not s.held), None)

    @property
    def requests(self) -> int:
        return sum(s.total.count for s in self.steps)

    def to_json(self) -> dict[str, Any]:
        found = self.knee
        return {
            "plan": {
                "start": self.plan.start,
                "step": self.plan.step,
                "ceiling": self.plan.ceiling,
                "step_seconds": self.plan.step_seconds,
                "via": self.plan.base.via,
                "spawn_rate": self.plan.base.spawn_rate,
                "wait": self.plan.base.wait,
                "limits": [str(lim) for lim in self.plan.base.limits],
            },
            "capacity_users": found.users if found else None,
            "capacity_rps": found.total.rps if found else None,
            "broke_at": self.broke.users if self.broke else None,
            "steps": [s.to_json() for s in self.steps],
            "generator_cpu_seconds": self.generator_cpu,
            "servers": self.servers.to_json() if self.servers else None,
            "pgbench": asdict(self.pgbench) if self.pgbench else None,
            "pgbench_error": self.pgbench_error or None,
        }


def capacity_command(plan: CapacityPlan, directory: Path) -> list[str]:
    """Locust with the shape beside the users: the shape sets the user count and the end."""
    return headless_command([LOCUSTFILE, SHAPEFILE], directory, plan.base.processes)


def follow(
    locust: LocustProcess, plan: CapacityPlan, directory: Path, say: Say
) -> list[StepResult]:
    """Judge each step as it ends, say how it went, stop at the first that broke. The logs
    are read only when a step has ended: reading them costs the machine under test CPU."""
    judged: list[StepResult] = []

    def step() -> bool:
        nonlocal judged
        ended = locust.wait(1.0)
        now = time.time()
        marks = read_marks(directory)
        over = sum(1 for m in marks if m.began + plan.step_seconds + SETTLE <= now)
        if over > len(judged):
            records = read_request_logs(directory)
            fresh = judge(marks, plan.step_seconds, records, plan.base.limits, now)
            for result in fresh[len(judged) :]:
                say(f"  step {step_line(result)}")
            judged = fresh
        return ended or bool(judged and not judged[-1].held) or len(judged) == len(plan.steps)

    deadline = plan.seconds + STOP_GRACE + 30
    poll(step, lambda done: done, timeout=deadline, interval=0)
    return judged


def run_capacity(
    stack: Stack, plan: CapacityPlan, directory: Path, say: Say = print
) -> CapacityResult:
    """The steps on the lab, then pgbench on the same cluster; the report either way."""
    preflight(stack, plan.load)
    prepare_directory(directory)
    (directory / STEPS_FILE).unlink(missing_ok=True)
    env = {
        **locust_environment(LoadTarget.of_lab(stack.lab, plan.base.via), plan.load, directory),
        "GARDENLAB_LOAD_STEPS": plan.shape_setting(),
        "GARDENLAB_LOAD_FLUSH_ROWS": FLUSH_ROWS,
    }
    say(
        f"capacity: {plan.start} to {plan.ceiling} users by {plan.step} via {plan.base.via}, "
        f"{plan.step_seconds:.0f} s a step (at most {plan.seconds:.0f} s); "
        f"limits {', '.join(str(lim) for lim in plan.base.limits)}; reports in {directory}"
    )
    watch = ServerWatch(stack)
    watch.start()
    with LocustProcess(
        capacity_command(plan, directory),
        env,
        directory / "locust.log",
        stack.lab.rendered_dir / TEXTFILE_DIR,
    ) as locust:
        follow(locust, plan, directory, say)
    stopped = time.time()
    # The final judgement reads the complete logs once Locust has written them.
    steps = judge(
        read_marks(directory),
        plan.step_seconds,
        read_request_logs(directory),
        plan.base.limits,
        stopped,
        settle=0.0,
    )
    if not steps:
        raise HarnessError(
            f"no step of the capacity run completed (Locust exit {locust.returncode}):\n"
            f"{locust.log_tail()}",
            f"its log: {locust.log_path}",
        )
    result = CapacityResult(plan, directory, steps, locust.cpu_seconds, watch.finish())
    if result.knee is not None and plan.pgbench is not None:
        try:
            result.pgbench = run_pgbench(stack, plan.pgbench, say)
        except HarnessError as exc:  # the reference is beside the capacity, not part of it
            result.pgbench_error = exc.message.splitlines()[0]
    write_report(result)
    if result.knee is None:
        first = steps[0]
        raise HarnessError(
            f"the stack saturates before the first step: at {first.users} users "
            f"{brief(first.failures)}",
            f"start lower (e.g. --start {max(1, plan.start // 5)} --step "
            f"{max(1, plan.step // 5)}); the steps' report: {directory}",
        )
    return result


def write_report(result: CapacityResult) -> None:
    directory = result.directory
    (directory / "capacity.json").write_text(json.dumps(result.to_json(), indent=1, default=str))
    limit = next(
        (lim.value for lim in result.plan.base.limits if lim.metric == "p95"), float("nan")
    )
    capacity_plot.plot(
        [
            capacity_plot.Point(
                s.users,
                s.total.rps,
                s.total.p95,
                s.slowest.p95 if s.slowest else float("nan"),
                s.slowest.name if s.slowest else "",
                s.held,
            )
            for s in result.steps
        ],
        directory / "capacity.png",
        title=f"capacity via {result.plan.base.via}: {result.plan.step_seconds:.0f} s steps",
        limit_ms=limit,
        knee=result.knee.users if result.knee else None,
    )


def brief(failures: Sequence[str], shown: int = 2) -> str:
    """What broke a step, in one line: when everything breaks at once, the first few."""
    more = len(failures) - shown
    return "; ".join(failures[:shown]) + (f"; and {more} more" if more > 0 else "")


def step_line(s: StepResult) -> str:
    total, slowest = s.total, s.slowest
    worst = f", slowest {slowest.name} p95 {slowest.p95:.1f}" if slowest else ""
    verdict = "held" if s.held else f"BROKE: {brief(s.failures)}"
    return (
        f"{s.users} users: {total.rps:.1f} req/s, p95 {total.p95:.1f} ms{worst}, "
        f"{total.errors} errors: {verdict}"
    )


def summary(result: CapacityResult) -> str:
    plan = result.plan
    lines = [
        f"capacity via {plan.base.via}: steps of {plan.step} users, {plan.step_seconds:.0f} s "
        f"each (judged from when a step's users all ran); limits "
        f"{', '.join(str(lim) for lim in plan.base.limits)}",
        f"  {'users':>6}{'req/s':>9}{'p50':>8}{'p95':>8}{'p99':>8}{'errors':>8}  "
        "slowest type (p95)       verdict",
    ]
    for s in result.steps:
        t, slowest = s.total, s.slowest
        worst = f"{slowest.name} {slowest.p95:.1f}" if slowest else "-"
        lines.append(
            f"  {s.users:>6}{t.rps:>9.1f}{t.p50:>8.1f}{t.p95:>8.1f}{t.p99:>8.1f}{t.errors:>8}  "
            f"{worst:<25}{'held' if s.held else 'BROKE'}"
        )
    found, broke = result.knee, result.broke
    if found is not None:
        lines.append(
            f"capacity: {found.users} users held, {found.total.rps:.1f} req/s, "
            f"p95 {found.total.p95:.1f} ms"
            + (
                f"; {broke.users} users broke it: {brief(broke.failures)}"
                if broke
                else f"; no step broke up to the ceiling ({plan.ceiling}): raise --ceiling"
            )
        )
    if result.pgbench is not None:
        pg = result.pgbench
        lines.append(
            f"pgbench reference (same cluster, leader's socket, {' + '.join(pg.scripts)}, "
            f"{pg.clients} clients, no think time): {pg.tps:.0f} tps, latency avg "
            f"{pg.latency_ms:.1f} ms, {pg.failed} failed"
        )
        if found is not None and pg.tps:
            lines.append(
                f"  the CRM mix at capacity: {found.total.rps:.0f} req/s = "
                f"{found.total.rps / pg.tps:.0%} of pgbench's transaction rate"
            )
    elif result.pgbench_error:
        lines.append(f"pgbench reference: not measured: {result.pgbench_error}")
    lines.append(f"generator: Locust used {result.generator_cpu:.0f} CPU s")
    if result.servers is not None:
        lines += summary_lines(result.servers, result.requests)
    lines.append(
        f"reports: {result.directory} (capacity.png, capacity.json, steps.csv, locust.html)"
    )
    return "\n".join(lines)
