from __future__ import annotations

import pytest
from click.testing import CliRunner

from harness import cli
from harness.core.errors import HarnessError, PortInUseError


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
    ],
)
def test_load_refuses_bad_input_before_touching_the_lab(
    args: list[str], says: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_stack() -> None:
        raise AssertionError("the lab must not be touched")

    monkeypatch.setattr(cli, "make_stack", no_stack)
    result = CliRunner().invoke(cli.cli, ["load", *args])
    assert isinstance(result.exception, HarnessError)
    assert says in result.exception.message
