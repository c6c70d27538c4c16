from __future__ import annotations

import signal
import subprocess
import sys

import pytest
from click.testing import CliRunner

from harness import cli
from harness.cli.app import App
from harness.core.errors import HarnessError, PortInUseError
from harness.core.progress import Say
from harness.lab.project import Lab
from harness.stack.lifecycle import Stack


def test_unknown_preset_is_a_usage_error_listing_the_choices() -> None:
    result = CliRunner().invoke(cli.cli, ["up", "--preset", "turbo"])
    assert result.exit_code == 2
    assert "'turbo' is not one of 'fast', 'normal', 'safe'" in result.output


def test_unknown_psql_endpoint_is_a_usage_error() -> None:
    result = CliRunner().invoke(cli.cli, ["psql", "primary"])
    assert result.exit_code == 2 and "rw" in result.output


def test_help_explains_the_endpoints() -> None:
    result = CliRunner().invoke(cli.cli, ["--help"])
    assert result.exit_code == 0
    assert "5000 read-write" in result.output and "down" in result.output


def test_harness_errors_print_message_and_hint_and_exit_non_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def boom(*args: object, **kwargs: object) -> None:
        raise PortInUseError("rw", 5000, "GARDENLAB_RW_PORT")

    monkeypatch.setattr(cli, "cli", boom)
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 1
    stderr = capsys.readouterr().err
    assert "port 5000 (rw)" in stderr and "GARDENLAB_RW_PORT=<port>" in stderr
    assert "Traceback" not in stderr


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["--scenario", "meteor-strike"], "unknown scenario 'meteor-strike'"),
        (["--threshold", "p95<100"], "is not [REQUEST:]METRIC=VALUE"),
        (["--users", "0"], "--users must be at least 1"),
        (["--duration", "soon"], "duration 'soon' is not a number"),
        (["--with-import", "10"], "10 is not in the range x>=1000"),
        (
            ["--with-import", "5000", "--scenario", "leader-kill"],
            "--scenario and --with-import do not go together",
        ),
    ],
)
def test_load_refuses_bad_input_before_touching_the_lab(args: list[str], says: str) -> None:
    def no_stack(lab: Lab, say: Say) -> Stack:
        raise AssertionError("the lab must not be touched")

    result = CliRunner().invoke(cli.cli, ["load", *args], obj=App(stack_factory=no_stack))
    error = result.exception
    if isinstance(error, HarnessError):  # refused by the command: main() exits with its code
        assert (error.exit_code, says in error.message) == (2, True)
    else:  # refused by click while parsing
        assert result.exit_code == 2 and says in result.output


@pytest.mark.parametrize(
    ("args", "says"),
    [
        (["fault", "latency", "pg2", "200"], "'200' is not a number with a unit"),
        (["fault", "bandwidth", "rw", "fast"], "malformed rate 'fast'"),
        (["restore", "--time", "2026-11-22 10:30"], "has no time zone"),
        (["seed", "--count", "leads"], "is not TABLE=N"),
        (["gate", "--target", "x.yml", "--duration", "later"], "'later' is not a number"),
    ],
)
def test_bad_values_are_usage_errors_before_anything_runs(args: list[str], says: str) -> None:
    def no_stack(lab: Lab, say: Say) -> Stack:
        raise AssertionError("the lab must not be touched")

    result = CliRunner().invoke(cli.cli, args, obj=App(stack_factory=no_stack))
    assert result.exit_code == 2, result.output
    assert says in result.output


def test_psql_arguments_alone_go_to_the_rw_endpoint(monkeypatch: pytest.MonkeyPatch) -> None:
    asked: list[tuple[str, list[str]]] = []

    class FakeStack:
        def psql_command(self, endpoint: str, args: list[str]) -> tuple[list[str], dict[str, str]]:
            asked.append((endpoint, args))
            return ["true"], {}

    monkeypatch.setattr("harness.core.process.replace", lambda command, env: None)
    app = App(stack_factory=lambda lab, say: FakeStack())  # type: ignore[arg-type, return-value]
    for args in (["-c", "select 1"], ["ro", "-Atc", "select 1"]):
        result = CliRunner().invoke(cli.cli, ["psql", *args], obj=app)
        assert result.exit_code == 0, result.output
    assert asked == [("rw", ["-c", "select 1"]), ("ro", ["-Atc", "select 1"])]


def test_a_commands_ctrl_c_ends_the_process_as_sigint_does_after_unwinding() -> None:
    """A shell or make then stops as well; the `with` blocks on the way out still ran."""
    program = (
        "import contextlib, harness.cli as c\n"
        "from harness.cli.output import exit_interrupted\n"
        "@contextlib.contextmanager\n"
        "def block():\n"
        "    try:\n"
        "        yield\n"
        "    finally:\n"
        "        print('unwound', flush=True)\n"
        "def command(standalone_mode):\n"
        "    with block():\n"
        "        exit_interrupted('interrupted: nothing to clean')\n"
        "c.cli = command\n"
        "c.main()\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", program], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == -signal.SIGINT, done.stderr
    assert done.stdout == "unwound\n" and "interrupted: nothing to clean" in done.stderr
