"""Capacity at the SLO without Locust or a stack: the steps, their windows and judgement,
the knee, the refusals, the report, and the pgbench reference over a fake runtime."""

from __future__ import annotations

import csv
import json
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from click.testing import CliRunner

from harness import cli
from harness.cli.app import App
from harness.core.errors import ConfigError, HarnessError
from harness.core.progress import Say
from harness.lab.project import Lab
from harness.load import capacity
from harness.load.capacity import (
    CapacityPlan,
    StepMark,
    judge,
    knee,
    read_marks,
    run_capacity,
    summary,
)
from harness.load.locust import LoadTarget
from harness.load.pgbench import DATABASE, PgbenchPlan, mix_weights, parse
from harness.load.pgbench import run as run_pgbench
from harness.load.plan import LoadPlan
from harness.load.report import RequestRecord
from harness.stack.lifecycle import Stack

BASE = LoadPlan(spawn_rate=10.0)


def plan(**kwargs: Any) -> CapacityPlan:
    return CapacityPlan(BASE, **{"start": 50, "step": 50, "ceiling": 200, **kwargs})


def marks(users: list[int], seconds: float = 30.0, spawn: float = 5.0) -> list[StepMark]:
    return [StepMark(i, n, i * seconds, i * seconds + spawn) for i, n in enumerate(users)]


def load(
    step_ms: dict[int, float], seconds: float = 30.0, name: str = "search_leads"
) -> list[RequestRecord]:
    """Ten requests a second through each step, each step at its own latency."""
    return [
        RequestRecord(i * seconds + t / 10, name, "ro", ms, True, "")
        for i, ms in step_ms.items()
        for t in range(int(seconds * 10))
    ]


# -- the plan ------------------------------------------------------------------------------


def test_the_steps_run_from_start_to_the_ceiling() -> None:
    p = plan(start=50, step=50, ceiling=220)
    assert p.steps == [50, 100, 150, 200]
    assert p.seconds == 120
    assert p.load.users == 200 and p.load.duration == 120
    assert p.shape_setting() == "50,50,220,30,10"


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"step": 0}, "--step 0: the user count must grow"),
        ({"start": 0}, "--start 0: a step needs at least 1 user"),
        ({"start": 300, "ceiling": 200}, "--ceiling 200 is below --start 300"),
        ({"start": 1, "step": 1, "ceiling": 500}, "500 steps from 1 to 500 by 1: at most 40"),
        ({"step_seconds": 5.0}, "--step-duration 5 s: at least 10 s"),
        ({"step": 200, "ceiling": 400}, "starting 200 users at 10/s takes 20 s"),
        ({"step_seconds": 600.0, "step": 10, "ceiling": 200}, "exceed 7200 s"),
    ],
)
def test_steps_that_make_no_sense_are_refused(kwargs: dict[str, Any], says: str) -> None:
    with pytest.raises(ConfigError) as refused:
        plan(**kwargs)
    assert says in refused.value.message and refused.value.hint


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--step", "0"], "--step 0"),
        (["--ceiling", "10", "--start", "50"], "--ceiling 10 is below --start 50"),
        (["--step-duration", "3s"], "--step-duration 3 s"),
        (["--scenario", "switchover"], "--scenario and --find-capacity do not go together"),
        (["--pgbench-clients", "-1"], "--pgbench-clients must be between 1 and 200"),
    ],
)
def test_the_command_refuses_bad_steps_before_touching_the_lab(args: list[str], says: str) -> None:
    def no_stack(lab: Lab, say: Say) -> Stack:
        raise AssertionError("the lab must not be touched")

    result = CliRunner().invoke(
        cli.cli, ["load", "--find-capacity", *args], obj=App(stack_factory=no_stack)
    )
    assert isinstance(result.exception, HarnessError), result.output
    assert result.exception.exit_code == 2 and says in result.exception.message


# -- the steps -----------------------------------------------------------------------------


def test_the_shapes_last_line_for_a_step_wins(tmp_path: Path) -> None:
    (tmp_path / "steps.csv").write_text(
        "step,users,began,reached\n0,50,100.0,\n0,50,100.0,104.5\n1,100,130.0,\n1,100,13"
    )
    assert read_marks(tmp_path) == [StepMark(0, 50, 100.0, 104.5), StepMark(1, 100, 130.0, None)]


def test_each_step_is_judged_on_its_window_and_the_first_breach_ends_the_run() -> None:
    records = load({0: 10.0, 1: 40.0, 2: 150.0, 3: 20.0})
    steps = judge(marks([50, 100, 150, 200]), 30.0, records, BASE.limits, now=1e9)
    assert [s.users for s in steps] == [50, 100, 150]  # nothing judged after the first breach
    assert [s.held for s in steps] == [True, True, False]
    assert "all requests: p95 150.0 ms" in steps[2].failures[0]
    # The window starts when the step's users all ran: the 5 s of spawning are not judged.
    assert steps[1].window.start == 35.0 and steps[1].window.end == 60.0
    assert steps[1].total.count == 250 and steps[1].total.rps == pytest.approx(10.0)
    found = knee(steps)
    assert found is not None and found.users == 100


def test_a_slow_request_type_breaks_a_step_the_aggregate_would_pass() -> None:
    records = load({0: 10.0, 1: 10.0}) + load({0: 10.0, 1: 150.0}, name="dashboard")[::20]
    steps = judge(marks([50, 100]), 30.0, records, BASE.limits, now=1e9)
    assert steps[1].total.p95 < 100
    assert not steps[1].held and steps[1].failures[0].startswith("dashboard: p95 150.0 ms")
    slowest = steps[1].slowest
    assert slowest is not None and slowest.name == "dashboard"


def test_errors_break_a_step() -> None:
    records = load({0: 10.0, 1: 10.0})
    records += [RequestRecord(45.0, "create_lead", "rw", 1.0, False, "PoolTimeout")]
    steps = judge(marks([50, 100]), 30.0, records, BASE.limits, now=1e9)
    assert steps[1].failures == ["all requests: errors 0.3984% (limit 0.1000%)"]


def test_a_step_not_yet_over_or_cut_short_is_not_judged() -> None:
    records = load({0: 10.0, 1: 10.0})
    two = marks([50, 100])
    # While Locust runs, a step waits for its slowest requests to be logged.
    assert len(judge(two, 30.0, records, BASE.limits, now=65.9)) == 1
    assert len(judge(two, 30.0, records, BASE.limits, now=66.0)) == 2
    # Once it has stopped, the logs are complete, but a step it stopped in is not judged.
    assert len(judge(two, 30.0, records, BASE.limits, now=60.0, settle=0)) == 2
    assert len(judge(two, 30.0, records, BASE.limits, now=59.0, settle=0)) == 1


def test_a_step_whose_users_never_all_ran_has_broken() -> None:
    steps_marks = [*marks([50]), StepMark(1, 100, 30.0, None)]
    steps = judge(steps_marks, 30.0, load({0: 10.0, 1: 10.0}), BASE.limits, now=1e9)
    assert steps[1].failures == ["the 100 users never all ran"]
    assert knee(steps) is steps[0]


def test_no_step_held_means_no_knee() -> None:
    steps = judge(marks([50, 100]), 30.0, load({0: 300.0}), BASE.limits, now=1e9)
    assert len(steps) == 1 and knee(steps) is None


# -- the run, with Locust and the stack faked ----------------------------------------------


class FakeLocust:
    """Writes what the shape and the users would have written, then is over."""

    step_ms: dict[int, float] = {}  # noqa: RUF012

    def __init__(
        self, command: list[str], env: dict[str, str], log: Path, textfile_dir: Path | None
    ) -> None:
        assert textfile_dir == Path("rendered") / "textfile"  # the lab's node_exporter reads it
        self.directory = Path(env["GARDENLAB_LOAD_LOG_DIR"])
        self.command, self.log_path = command, log
        self.cpu_seconds, self.returncode = 1.0, 0

    def __enter__(self) -> FakeLocust:
        with (self.directory / "steps.csv").open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["step", "users", "began", "reached"])
            for m in marks([50 * (i + 1) for i in range(len(self.step_ms))]):
                out.writerow([m.index, m.users, m.began, m.reached])
        with (self.directory / "requests-1.csv").open("w", newline="") as f:
            out = csv.writer(f)
            out.writerow(["timestamp", "request_type", "name", "response_time_ms", "exception"])
            for r in load(self.step_ms):
                out.writerow([r.at, r.kind, r.name, r.ms, ""])
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def wait(self, timeout: float) -> bool:
        return True

    def log_tail(self) -> str:
        return ""


class FakeWatch:
    def __init__(self, stack: object) -> None:
        pass

    def start(self) -> None:
        pass

    def finish(self) -> None:
        return None


@pytest.fixture
def faked(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    pgbench_runs: list[PgbenchPlan] = []
    monkeypatch.setattr(capacity, "preflight", lambda stack, plan: None)
    monkeypatch.setattr(capacity, "LocustProcess", FakeLocust)
    monkeypatch.setattr(capacity, "ServerWatch", FakeWatch)
    monkeypatch.setattr(
        LoadTarget, "of_lab", classmethod(lambda cls, lab, via: LoadTarget("w", "r", "s"))
    )

    def fake_pgbench(stack: object, p: PgbenchPlan, say: Say) -> Any:
        pgbench_runs.append(p)
        return parse(PGBENCH_OUTPUT, p)

    monkeypatch.setattr(capacity, "run_pgbench", fake_pgbench)
    lab = SimpleNamespace(rendered_dir=Path("rendered"))
    return SimpleNamespace(stack=SimpleNamespace(lab=lab), pgbench=pgbench_runs)


def test_the_run_reports_the_knee_the_plot_and_pgbench(
    faked: SimpleNamespace, tmp_path: Path
) -> None:
    FakeLocust.step_ms = {0: 10.0, 1: 30.0, 2: 140.0}
    result = run_capacity(faked.stack, plan(), tmp_path, say=lambda _: None)
    assert result.knee is not None and result.knee.users == 100
    assert result.broke is not None and result.broke.users == 150
    assert (tmp_path / "capacity.png").stat().st_size > 0
    saved = json.loads((tmp_path / "capacity.json").read_text())
    assert (saved["capacity_users"], saved["broke_at"]) == (100, 150)
    assert saved["pgbench"]["tps"] == 1522.6 and len(faked.pgbench) == 1
    text = summary(result)
    assert "capacity: 100 users held, 10.0 req/s" in text
    assert "150 users broke it: all requests: p95 140.0 ms" in text
    assert "1523 tps" in text and "of pgbench's transaction rate" in text


def test_no_breach_up_to_the_ceiling_says_so(faked: SimpleNamespace, tmp_path: Path) -> None:
    FakeLocust.step_ms = {0: 10.0, 1: 10.0, 2: 10.0, 3: 10.0}
    result = run_capacity(faked.stack, plan(), tmp_path, say=lambda _: None)
    assert result.knee is not None and result.knee.users == 200 and result.broke is None
    assert "no step broke up to the ceiling (200): raise --ceiling" in summary(result)


def test_a_stack_saturated_before_the_first_step_is_one_clear_error(
    faked: SimpleNamespace, tmp_path: Path
) -> None:
    FakeLocust.step_ms = {0: 400.0, 1: 400.0}
    with pytest.raises(HarnessError) as saturated:
        run_capacity(faked.stack, plan(), tmp_path, say=lambda _: None)
    assert saturated.value.message.startswith(
        "the stack saturates before the first step: at 50 users all requests: p95 400.0 ms"
    )
    assert "--start 10 --step 10" in saturated.value.hint
    assert faked.pgbench == []  # nothing more is done to the cluster
    assert json.loads((tmp_path / "capacity.json").read_text())["capacity_users"] is None


# -- pgbench -------------------------------------------------------------------------------

PGBENCH_OUTPUT = """pgbench (17.11 (Debian 17.11-1))
transaction type: multiple scripts
scaling factor: 10
query mode: simple
number of clients: 8
number of threads: 2
maximum number of tries: 1
duration: 30 s
number of transactions actually processed: 45678
number of failed transactions: 0 (0.000%)
latency average = 5.254 ms
initial connection time = 12.345 ms
tps = 1522.600000 (without initial connection time)
SQL script 1: <builtin: select only>
"""


def test_pgbench_weighs_reads_and_writes_like_the_mix() -> None:
    assert mix_weights() == (14, 7)
    command = PgbenchPlan(clients=4, seconds=20).command()
    assert command[-1] == DATABASE
    assert "select-only@14" in command and "simple-update@7" in command
    assert command[command.index("--client") + 1] == "4"
    assert command[command.index("--time") + 1] == "20"


def test_pgbench_output_is_read_and_a_run_without_result_is_an_error() -> None:
    result = parse(PGBENCH_OUTPUT, PgbenchPlan())
    assert (result.tps, result.latency_ms, result.transactions, result.failed) == (
        1522.6,
        5.254,
        45678,
        0,
    )
    with pytest.raises(HarnessError, match="pgbench printed no result"):
        parse("pgbench: error: connection refused", PgbenchPlan())


class PgbenchStack:
    def __init__(self, fail: bool) -> None:
        self.fail = fail
        self.calls: list[str] = []

    def leader(self) -> str:
        return "pg2"

    def node_sql(self, node: str, query: str) -> str:
        self.calls.append(f"{node}: {query}")
        return ""

    def execute(self, service: str, command: list[str], user: str = "root") -> str:
        self.calls.append(f"{service}: {' '.join(command[:2])}")
        if self.fail and "-i" not in command:
            raise HarnessError("command failed (exit 2): pgbench", "")
        return PGBENCH_OUTPUT


@pytest.mark.parametrize("fail", [False, True])
def test_pgbench_leaves_no_database_behind(fail: bool) -> None:
    stack = PgbenchStack(fail)
    if fail:
        with pytest.raises(HarnessError):
            run_pgbench(stack, PgbenchPlan(), say=lambda _: None)  # type: ignore[arg-type]
    else:
        assert run_pgbench(stack, PgbenchPlan(), say=lambda _: None).tps == 1522.6  # type: ignore[arg-type]
    assert stack.calls[-1] == f"pg2: DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
    assert f"pg2: CREATE DATABASE {DATABASE}" in stack.calls
