"""Locust load against the lab, alone or while a chaos scenario runs.

Locust runs as a child process (its gevent monkey-patching stays out of the harness) on
loadtests/locustfile.py, headless and bounded by `--run-time`; everything it writes lands
in one directory: Locust's CSV and HTML reports, its log, and a CSV of every request per
load process, from which the harness cuts windows (ramp, steady, fault, recovery), checks
the thresholds and draws the timeline. Before any load starts, the plan, the stack and
the data are checked, so a bad run fails in a second, not after minutes.
"""

from __future__ import annotations

import csv
import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import psycopg

import loadtests
from harness.chaos.runner import RECOVERY_TIMEOUT, Result, Scenario
from harness.chaos.runner import run as run_scenario
from harness.chaos.runner import write_report as write_chaos_report
from harness.core.errors import ConfigError, HarnessError, first_line
from harness.data.seed import seeded
from harness.lab.project import Lab
from harness.load.report import (
    ALL,
    ErrorSpan,
    Limit,
    Stats,
    Window,
    breaches,
    error_span,
    plot_timeline,
    read_request_logs,
    stats_json,
    window_stats,
)
from harness.stack.lifecycle import Stack

Say = Callable[[str], None]

DEFAULT_LIMITS = (Limit(ALL, "p95", 100.0), Limit(ALL, "errors", 0.001))
# The primary path each `--via` takes; stale-tolerant reads always use HAProxy's ro port.
WRITE_ENDPOINTS = {"haproxy": "rw", "pgbouncer": "pooler"}
MAX_SECONDS = 2 * 3600  # no run goes longer, whatever was asked
WARMUP = 20.0  # s of steady load after the ramp before a scenario starts
TAIL = 15.0  # s of load after a scenario ends
STOP_GRACE = 30.0  # s Locust gets to write its reports after being asked to stop
PROGRESS_EVERY = 10.0  # s between progress lines
LOCUSTFILE = Path(loadtests.__file__).parent / "locustfile.py"


@dataclass(frozen=True)
class LoadPlan:
    users: int = 100
    spawn_rate: float = 10.0  # users started per second
    duration: float = 180.0  # s in all, the ramp included
    via: str = "haproxy"
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
            (self.via not in WRITE_ENDPOINTS, f"--via must be one of {', '.join(WRITE_ENDPOINTS)}"),
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


def parse_duration(text: str) -> float:
    """Seconds from `90`, `90s`, `3m` or `1h`."""
    units = {"s": 1, "m": 60, "h": 3600}
    raw = text.strip().lower()
    number, unit = (raw[:-1], raw[-1]) if raw and raw[-1] in units else (raw, "s")
    try:
        return float(number) * units[unit]
    except ValueError:
        raise ConfigError(
            f"duration {text!r} is not a number of s, m or h", "e.g. 90, 90s, 3m"
        ) from None


def parse_wait(text: str) -> tuple[float, float]:
    try:
        low, high = (float(x) for x in text.split(","))
    except ValueError:
        raise ConfigError(f"--wait {text!r} is not MIN,MAX in seconds", "e.g. 0.2,1.0") from None
    return low, high


# -- before any load -----------------------------------------------------------------------


def preflight(stack: Stack, plan: LoadPlan) -> None:
    """The lab must be up and healthy, with CRM data seeded and the tenant role able to log
    in on the plan's endpoints: say so before Locust starts."""
    status = stack.status()
    if not status.containers:
        raise HarnessError("the lab is down", "`make dev-up` starts it")
    if not status.healthy:
        why = f": {status.cluster_error}" if status.cluster_error else ""
        raise HarnessError(
            f"the lab is not healthy{why}",
            "`make status` shows why; `harness fault heal` undoes hand-made faults",
        )
    try:
        with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
            row = conn.execute("SELECT to_regclass('public.leads') IS NOT NULL").fetchone()
            schema, finished = bool(row and row[0]), seeded(conn)
    except psycopg.OperationalError as exc:
        raise HarnessError(
            f"cannot reach the rw endpoint: {first_line(exc)}", "`make status`"
        ) from None
    if not schema:
        raise HarnessError("the CRM schema is missing", "`make migrate` applies it")
    if not finished:
        raise HarnessError(
            "no CRM data is seeded",
            "`make seed` (or `make seed SCALE=prod` for production figures)",
        )
    for endpoint in (WRITE_ENDPOINTS[plan.via], "ro"):
        try:
            psycopg.connect(stack.lab.dsn(endpoint, role="crm_app"), autocommit=True).close()
        except psycopg.OperationalError as exc:
            raise HarnessError(
                f"the tenant role crm_app cannot log in on {endpoint}: "
                f"{str(exc).strip().splitlines()[-1]}",
                "`make dev-up` renews the lab's logins (migrations and PgBouncer's auth file)",
            ) from None


# -- Locust as a child process -------------------------------------------------------------


def prepare_directory(directory: Path) -> None:
    """Request logs of an earlier run in the same directory would be read as this run's."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("requests-*.csv"):
        stale.unlink()


@dataclass(frozen=True)
class LoadTarget:
    """Where Locust's users connect: the primary path and the replicas as the tenant role,
    and a role that sees every tenant, to draw the samples users pick from."""

    write_dsn: str
    read_dsn: str
    sample_dsn: str

    @classmethod
    def of_lab(cls, lab: Lab, via: str) -> LoadTarget:
        return cls(
            lab.dsn(WRITE_ENDPOINTS[via], role="crm_app", connect_timeout=2),
            lab.dsn("ro", role="crm_app", connect_timeout=2),
            lab.dsn("ro", connect_timeout=5),
        )


def locust_environment(target: LoadTarget, plan: LoadPlan, directory: Path) -> dict[str, str]:
    """Connection strings reach Locust through its environment, never its command line."""
    return {
        **os.environ,
        "GARDENLAB_LOAD_WRITE_DSN": target.write_dsn,
        "GARDENLAB_LOAD_READ_DSN": target.read_dsn,
        "GARDENLAB_LOAD_SAMPLE_DSN": target.sample_dsn,
        "GARDENLAB_LOAD_LOG_DIR": str(directory),
        "GARDENLAB_LOAD_POOL_SIZE": str(plan.pool_size),
        "GARDENLAB_LOAD_WAIT": f"{plan.wait[0]},{plan.wait[1]}",
    }


def locust_command(plan: LoadPlan, directory: Path, run_time: float) -> list[str]:
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        str(LOCUSTFILE),
        "--headless",
        "--users",
        str(plan.users),
        "--spawn-rate",
        f"{plan.spawn_rate:g}",
        "--run-time",
        f"{int(run_time)}s",
        "--stop-timeout",
        "5",
        "--only-summary",
        "--csv",
        str(directory / "locust"),
        "--html",
        str(directory / "locust.html"),
        "--exit-code-on-error",
        "0",
    ]
    if plan.processes > 1:
        command += ["--processes", str(plan.processes)]
    return command


class LocustProcess:
    """Locust running headless; stopping it always lets it write its reports first."""

    def __init__(self, command: list[str], env: dict[str, str], log: Path) -> None:
        self.command, self.env, self.log_path = command, env, log
        self.started = 0.0
        self.cpu_seconds = 0.0  # Locust's processes, user + system
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._cpu_before = 0.0

    def __enter__(self) -> LocustProcess:
        self._log = self.log_path.open("wb")
        self._cpu_before = children_cpu()
        self.started = time.time()
        self._proc = subprocess.Popen(
            self.command,
            env=self.env,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
        )
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    def wait(self, timeout: float) -> bool:
        """Wait up to timeout for Locust to end by itself; True when it has."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """SIGINT (Locust then writes its CSV and HTML reports), SIGKILL as the last resort."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            if not self.wait(STOP_GRACE):
                self._proc.kill()
                self._proc.wait()
        self.cpu_seconds = children_cpu() - self._cpu_before
        if self._log:
            self._log.close()
        self._proc = None

    def log_tail(self, lines: int = 15) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.strip().splitlines()[-lines:])


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def live_totals(directory: Path) -> tuple[int, int] | None:
    """Requests and failures so far, from the last aggregated row Locust wrote."""
    path = directory / "locust_stats_history.csv"
    if not path.exists():
        return None
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    if not rows:
        return None
    return int(rows[-1]["Total Request Count"]), int(rows[-1]["Total Failure Count"])


def wait_with_progress(locust: LocustProcess, until: float, directory: Path, say: Say) -> None:
    """Wait until the epoch time `until` or Locust's end, with a progress line now and then."""
    next_line = time.time() + PROGRESS_EVERY
    while locust.running and time.time() < until:
        locust.wait(min(1.0, max(0.0, until - time.time())))
        if time.time() >= next_line:
            next_line += PROGRESS_EVERY
            totals = live_totals(directory)
            counted = f", {totals[0]:,} requests, {totals[1]:,} failed" if totals else ""
            say(f"  load: {time.time() - locust.started:.0f} s{counted}")


# -- results -------------------------------------------------------------------------------


@dataclass
class LoadResult:
    plan: LoadPlan
    directory: Path
    windows: list[Window]
    stats: dict[str, list[Stats]]  # window name -> rows
    gate: str  # the window the thresholds are checked on
    wall_seconds: float
    generator_cpu: float  # Locust's CPU seconds
    locust_exit: int | None
    locust_warnings: list[str]
    failures: list[str] = field(default_factory=list)
    scenario: Scenario | None = None
    chaos: Result | None = None
    errors_after_fault: ErrorSpan | None = None

    @property
    def passed(self) -> bool:
        return not self.failures

    @property
    def generator_cores(self) -> float:
        return self.generator_cpu / self.wall_seconds if self.wall_seconds else 0.0

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "failures": self.failures,
            "plan": {**self.plan.__dict__, "limits": [str(lim) for lim in self.plan.limits]},
            "windows": [w.__dict__ for w in self.windows],
            "gate": self.gate,
            "stats": {name: stats_json(rows) for name, rows in self.stats.items()},
            "generator": {
                "cpu_seconds": self.generator_cpu,
                "cores": self.generator_cores,
                "warnings": self.locust_warnings,
                "exit": self.locust_exit,
            },
            "scenario": self.chaos.scenario if self.chaos else None,
            "chaos_passed": self.chaos.passed if self.chaos else None,
            "errors_after_fault": self.errors_after_fault.__dict__
            if self.errors_after_fault
            else None,
        }


def analyse(
    plan: LoadPlan,
    directory: Path,
    locust: LocustProcess,
    marks: dict[str, float],  # extra window boundaries as epoch seconds: fault, ready
    chaos: tuple[Scenario, Result] | None = None,
) -> LoadResult:
    records = read_request_logs(directory)
    if not records:
        raise HarnessError(
            f"Locust recorded no request (exit {locust.returncode}):\n{locust.log_tail()}",
            f"its log: {locust.log_path}",
        )
    start, end = records[0].at, records[-1].at + 1e-6
    ramp_end = min(start + plan.ramp, end)
    windows = [Window("ramp", start, ramp_end)]
    if "fault" in marks:
        windows += [
            Window("steady", ramp_end, marks["fault"]),
            Window("fault", marks["fault"], marks["ready"]),
            Window("recovery", marks["ready"], end),
        ]
    else:
        windows.append(Window("steady", ramp_end, end))
    stats = {w.name: window_stats(records, w) for w in windows}
    text = locust.log_path.read_text(errors="replace")
    warnings = sorted(
        {line.split("] ", 1)[-1].strip() for line in text.splitlines() if "CPU usage above" in line}
    )
    result = LoadResult(
        plan,
        directory,
        windows,
        stats,
        "steady",
        end - start,
        locust.cpu_seconds,
        locust.returncode,
        warnings,
    )
    if locust.returncode not in (0, None):
        result.failures.append(f"Locust exited with {locust.returncode}: see {locust.log_path}")
    result.failures += breaches(stats["steady"], plan.limits)
    if chaos:
        scenario, outcome = chaos
        result.scenario, result.chaos = scenario, outcome
        result.errors_after_fault = error_span(records, marks["fault"])
        result.failures += [f"scenario {outcome.scenario}: {f}" for f in outcome.failures]
    title = f"{plan.users} users via {plan.via}" + (
        f" during {chaos[1].scenario}: {chaos[1].fault}" if chaos else ""
    )
    plot_timeline(records, windows, directory / "timeline.png", title)
    (directory / "summary.json").write_text(json.dumps(result.to_json(), indent=1, default=str))
    return result


# -- the two runs --------------------------------------------------------------------------


def run_load(stack: Stack, plan: LoadPlan, directory: Path, say: Say = print) -> LoadResult:
    """Steady load on the lab for the plan's duration, once the lab is checked."""
    preflight(stack, plan)
    return run_target(LoadTarget.of_lab(stack.lab, plan.via), plan, directory, say)


def run_target(target: LoadTarget, plan: LoadPlan, directory: Path, say: Say = print) -> LoadResult:
    """Steady load for the plan's duration; the thresholds are checked after the ramp."""
    prepare_directory(directory)
    command = locust_command(plan, directory, plan.duration)
    env = locust_environment(target, plan, directory)
    say(
        f"load: {plan.users} users via {plan.via}, ramp {plan.ramp:.0f} s, "
        f"{plan.duration:.0f} s in all; reports in {directory}"
    )
    with LocustProcess(command, env, directory / "locust.log") as locust:
        wait_with_progress(locust, locust.started + plan.duration + STOP_GRACE, directory, say)
    return analyse(plan, directory, locust, {})


def run_load_chaos(
    stack: Stack, plan: LoadPlan, scenario: Scenario, directory: Path, say: Say = print
) -> LoadResult:
    """The same load while a scenario runs: ramp, warm-up, the scenario, a tail, then stop.

    The scenario heals its fault whatever happens; Locust is stopped whatever happens.
    """
    preflight(stack, plan)
    prepare_directory(directory)
    bound = (
        plan.ramp
        + WARMUP
        + scenario.steady
        + scenario.hold
        + scenario.recover
        + 3 * RECOVERY_TIMEOUT
        + TAIL
        + 60
    )
    command = locust_command(plan, directory, min(bound, MAX_SECONDS))
    env = locust_environment(LoadTarget.of_lab(stack.lab, plan.via), plan, directory)
    say(
        f"load: {plan.users} users via {plan.via}, ramp {plan.ramp:.0f} s, then scenario "
        f"{scenario.name}; reports in {directory}"
    )
    with LocustProcess(command, env, directory / "locust.log") as locust:
        wait_with_progress(locust, locust.started + plan.ramp + WARMUP, directory, say)
        if not locust.running:
            raise HarnessError(
                f"Locust stopped before the scenario:\n{locust.log_tail()}",
                f"its log: {locust.log_path}",
            )
        outcome = run_scenario(stack, scenario, say=say)
        write_chaos_report(outcome, directory / "chaos")
        wait_with_progress(locust, time.time() + TAIL, directory, say)
    record = outcome.record
    marks = {"fault": record.wall("fault"), "ready": record.wall("ready")}
    return analyse(plan, directory, locust, marks, (scenario, outcome))


def summary(result: LoadResult) -> str:
    """Per window, one line per request type; then the gate's verdict and the generator."""
    plan = result.plan
    lines = [
        f"load: {plan.users} users via {plan.via}, {result.wall_seconds:.0f} s; "
        f"thresholds on the {result.gate} window: "
        f"{', '.join(str(lim) for lim in plan.limits)}"
    ]
    header = (
        f"  {'request':<18}{'ep':<4}{'count':>8}{'req/s':>8}{'p50':>8}{'p95':>8}"
        f"{'p99':>8}{'max':>9}{'errors':>8}"
    )
    for window in result.windows:
        if window.name == "ramp":
            continue
        lines += [f"{window.name} window ({window.seconds:.0f} s), milliseconds:", header]
        for s in result.stats[window.name]:
            name = "all" if s.name == ALL else s.name
            lines.append(
                f"  {name:<18}{s.kind:<4}{s.count:>8,}{s.rps:>8.1f}{s.p50:>8.1f}{s.p95:>8.1f}"
                f"{s.p99:>8.1f}{s.max:>9.1f}{s.errors:>8,}"
            )
    span = result.errors_after_fault
    if span is not None:
        lines.append(
            f"errors after the fault: {span.errors:,}"
            + (
                f", from +{span.first_after:.1f} s to +{span.last_after:.1f} s "
                f"({span.seconds:.1f} s in which users saw errors)"
                if span.errors
                else ""
            )
        )
    lines.append(
        f"generator: Locust used {result.generator_cpu:.0f} CPU s in {result.wall_seconds:.0f} s "
        f"({result.generator_cores:.2f} cores, {plan.processes} process(es))"
        + (f"; WARNING: {'; '.join(result.locust_warnings)}" if result.locust_warnings else "")
    )
    lines.append("PASSED" if result.passed else "FAILED")
    lines += [f"  FAILURE: {failure}" for failure in result.failures]
    lines.append(
        f"reports: {result.directory} (locust.html, locust_stats.csv, timeline.png, "
        f"summary.json{', chaos/' if result.chaos else ''})"
    )
    return "\n".join(lines)
