"""Locust load against the lab, alone or while a chaos scenario runs.

Locust runs as a child process (its gevent monkey-patching stays out of the harness) on
loadtests/locustfile.py, headless and bounded by `--run-time`; everything it writes lands
in one directory: Locust's CSV and HTML reports, its log, and a CSV of every request per
load process, from which the harness cuts windows (ramp, steady, fault, recovery), checks
the thresholds and draws the timeline. Before any load starts, the plan, the stack and
the data are checked, so a bad run fails in a second, not after minutes.

With a CSV import, one run holds both sides of the comparison: the steady window before the
import is submitted, the window while it runs, and the window after it, under the same
users, data and machine (two runs minutes apart on a shared machine differ by more than
what is measured).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from harness.chaos.imports import FINISHED_TIMEOUT, STARTED_TIMEOUT, ImportAlongside, ImportPlan
from harness.chaos.report import write_report as write_chaos_report
from harness.chaos.runner import RECOVERY_TIMEOUT, Result, Scenario
from harness.chaos.runner import run as run_scenario
from harness.config.render import TEXTFILE_DIR
from harness.core.errors import HarnessError, first_line
from harness.core.progress import Say
from harness.data.seed import seeded
from harness.lab.topology import PRIMARY_PATHS
from harness.load.locust import (
    STOP_GRACE,
    LoadTarget,
    LocustProcess,
    locust_command,
    locust_environment,
    prepare_directory,
    wait_with_progress,
)
from harness.load.plan import MAX_SECONDS, LoadPlan
from harness.load.report import (
    ALL,
    ErrorSpan,
    Stats,
    Window,
    breaches,
    error_span,
    plot_timeline,
    read_request_logs,
    stats_json,
    window_stats,
)
from harness.load.servers import ServerUse, ServerWatch, summary_lines
from harness.stack.dashboard import Window as PanelWindow
from harness.stack.lifecycle import Stack

WARMUP = 20.0  # s of steady load after the ramp before a scenario starts
TAIL = 15.0  # s of load after a scenario ends


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
    for endpoint in (PRIMARY_PATHS[plan.via], "ro"):
        try:
            psycopg.connect(stack.lab.dsn(endpoint, role="crm_app"), autocommit=True).close()
        except psycopg.OperationalError as exc:
            raise HarnessError(
                f"the tenant role crm_app cannot log in on {endpoint}: "
                f"{str(exc).strip().splitlines()[-1]}",
                "`make dev-up` renews the lab's logins (migrations and PgBouncer's auth file)",
            ) from None


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
    servers: ServerUse | None = None  # the lab's: a gate's target has no containers to read
    imported: dict[str, Any] | None = None  # the import's summary and its seconds under load

    @property
    def requests(self) -> int:
        return sum(s.count for w in self.windows for s in self.stats[w.name] if s.name == ALL)

    def aggregate(self, window: str = "steady") -> Stats:
        """The row over every request type in one window."""
        return next(s for s in self.stats[window] if s.name == ALL)

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
            "servers": self.servers.to_json() if self.servers else None,
            "import": self.imported,
        }


def analyse(
    plan: LoadPlan,
    directory: Path,
    locust: LocustProcess,
    marks: dict[str, float],  # extra window boundaries as epoch seconds: fault, ready
    chaos: tuple[Scenario, Result] | None = None,
    servers: ServerUse | None = None,
    imported: dict[str, Any] | None = None,
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
    elif "import" in marks:
        windows += [
            Window("steady", ramp_end, marks["import"]),
            Window("import", marks["import"], marks["imported"]),
            Window("after", marks["imported"], end),
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
        servers=servers,
        imported=imported,
    )
    if locust.returncode not in (0, None):
        result.failures.append(f"Locust exited with {locust.returncode}: see {locust.log_path}")
    result.failures += breaches(stats["steady"], plan.limits)
    if chaos:
        scenario, outcome = chaos
        result.scenario, result.chaos = scenario, outcome
        result.errors_after_fault = error_span(records, marks["fault"])
        result.failures += [f"scenario {outcome.scenario}: {f}" for f in outcome.failures]
    if imported:
        result.failures += [f"import: {f}" for f in imported["failures"]]
    title = f"{plan.users} users via {plan.via}" + (
        f" during {chaos[1].scenario}: {chaos[1].fault}" if chaos else ""
    )
    if imported:
        title += f" with an import of {imported['rows']:,} rows"
    plot_timeline(records, windows, directory / "timeline.png", title)
    (directory / "summary.json").write_text(json.dumps(result.to_json(), indent=1, default=str))
    return result


# -- the two runs --------------------------------------------------------------------------


def run_load(stack: Stack, plan: LoadPlan, directory: Path, say: Say = print) -> LoadResult:
    """Steady load on the lab for the plan's duration, once the lab is checked; with what
    its servers did meanwhile."""
    preflight(stack, plan)
    return run_target(
        LoadTarget.of_lab(stack.lab, plan.via),
        plan,
        directory,
        say,
        ServerWatch(stack),
        stack.lab.rendered_dir / TEXTFILE_DIR,
    )


def run_target(
    target: LoadTarget,
    plan: LoadPlan,
    directory: Path,
    say: Say = print,
    watch: ServerWatch | None = None,
    textfile_dir: Path | None = None,
) -> LoadResult:
    """Steady load for the plan's duration; the thresholds are checked after the ramp. With
    a textfile directory (the lab's node_exporter), its latency histogram goes to Prometheus."""
    prepare_directory(directory)
    command = locust_command(plan, directory, plan.duration)
    env = locust_environment(target, plan, directory)
    say(
        f"load: {plan.users} users via {plan.via}, ramp {plan.ramp:.0f} s, "
        f"{plan.duration:.0f} s in all; reports in {directory}"
    )
    if watch:
        watch.start()
    with LocustProcess(command, env, directory / "locust.log", textfile_dir) as locust:
        wait_with_progress(locust, locust.started + plan.duration + STOP_GRACE, directory, say)
    return analyse(plan, directory, locust, {}, servers=watch.finish() if watch else None)


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
    watch = ServerWatch(stack)
    watch.start()
    say(
        f"load: {plan.users} users via {plan.via}, ramp {plan.ramp:.0f} s, then scenario "
        f"{scenario.name}; reports in {directory}"
    )
    with LocustProcess(
        command, env, directory / "locust.log", stack.lab.rendered_dir / TEXTFILE_DIR
    ) as locust:
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
    return analyse(plan, directory, locust, marks, (scenario, outcome), watch.finish())


def run_load_import(
    stack: Stack, plan: LoadPlan, rows: int, directory: Path, say: Say = print
) -> LoadResult:
    """The same load while a CSV import of `rows` rows runs: ramp, warm-up (the steady
    window, without the import), the import (submitted, then followed to its end), a tail.

    The import is checked as the chaos scenarios check it: each valid row once. Locust is
    stopped whatever happens; an import cut short goes on in the service."""
    preflight(stack, plan)
    prepare_directory(directory)
    bound = plan.ramp + WARMUP + STARTED_TIMEOUT + FINISHED_TIMEOUT + TAIL + 60
    command = locust_command(plan, directory, min(bound, MAX_SECONDS))
    env = locust_environment(LoadTarget.of_lab(stack.lab, plan.via), plan, directory)
    watch = ServerWatch(stack)
    watch.start()
    alongside = ImportAlongside(stack, ImportPlan(rows), say)
    alongside.prepare(seed=int(time.time()))
    say(
        f"load: {plan.users} users via {plan.via}, ramp {plan.ramp:.0f} s, {WARMUP:.0f} s "
        f"without an import, then an import of {rows:,} rows; reports in {directory}"
    )
    try:
        with LocustProcess(
            command, env, directory / "locust.log", stack.lab.rendered_dir / TEXTFILE_DIR
        ) as locust:
            wait_with_progress(locust, locust.started + plan.ramp + WARMUP, directory, say)
            if not locust.running:
                raise HarnessError(
                    f"Locust stopped before the import:\n{locust.log_tail()}",
                    f"its log: {locust.log_path}",
                )
            marks = {"import": time.time()}
            alongside.start(seed=0)  # the file is written already
            done = alongside.finish()
            marks["imported"] = time.time()
            wait_with_progress(locust, time.time() + TAIL, directory, say)
        seconds = marks["imported"] - marks["import"]
        imported = {
            "rows": rows,
            "id": done["id"],
            "state": done["state"],
            "imported": done["imported"],
            "rejected": done["rejected"],
            "seconds": seconds,
            "rows_per_second": rows / seconds if seconds else 0.0,
            "failures": alongside.check(done),
        }
    finally:
        alongside.folder.cleanup()
    return analyse(plan, directory, locust, marks, servers=watch.finish(), imported=imported)


def panel_window(result: LoadResult) -> tuple[PanelWindow, list[float]]:
    """The run as the dashboard's window, on the load timeline's clock (0 s is the first
    request), each window's start marked: a p95 spike reads next to what the servers did."""
    origin, end = result.windows[0].start, result.windows[-1].end
    return PanelWindow(origin, end, origin), [w.start - origin for w in result.windows[1:]]


def import_lines(result: LoadResult) -> list[str]:
    """What the import cost the interactive requests: p95 before, during and after it."""
    done = result.imported
    if not done:
        return []
    p95 = {
        name: next((s.p95 for s in rows if s.name == ALL), 0.0)
        for name, rows in result.stats.items()
    }
    before, during = p95.get("steady", 0.0), p95.get("import", 0.0)
    return [
        f"import {done['id']}: {done['rows']:,} rows in {done['seconds']:.1f} s under load "
        f"({done['rows_per_second']:,.0f} rows/s), {done['state']}, {done['imported']:,} "
        f"imported, {done['rejected']:,} rejected",
        f"p95 of all requests: {before:.1f} ms without the import, {during:.1f} ms while it "
        f"ran ({during - before:+.1f} ms), {p95.get('after', 0.0):.1f} ms after it",
    ]


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
    lines += import_lines(result)
    if result.servers is not None:
        lines += summary_lines(result.servers, result.requests)
    lines.append("PASSED" if result.passed else "FAILED")
    lines += [f"  FAILURE: {failure}" for failure in result.failures]
    lines.append(
        f"reports: {result.directory} (locust.html, locust_stats.csv, timeline.png, "
        f"summary.json{', chaos/' if result.chaos else ''})"
    )
    return "\n".join(lines)
