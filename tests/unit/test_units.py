"""One grammar per unit a user types: durations, rates, timestamps."""

from __future__ import annotations

import pytest

from harness.core.errors import ConfigError
from harness.core.units import parse_duration, parse_rate_kbps, parse_timestamp


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("0", 0), ("200ms", 0.2), ("1.5s", 1.5), ("2s", 2), ("0ms", 0), ("3m", 180), ("1h", 3600)],
)
def test_durations_with_a_unit(text: str, seconds: float) -> None:
    assert parse_duration(text, bare=None) == pytest.approx(seconds)
    assert parse_duration(text) == pytest.approx(seconds)


def test_a_bare_number_is_seconds_where_the_command_says_so() -> None:
    assert parse_duration("90") == 90


@pytest.mark.parametrize("text", ["200", "-5ms", "fast", "1.5", "", "2d"])
def test_malformed_fault_durations_say_how_to_write_them(text: str) -> None:
    with pytest.raises(ConfigError, match="is not a number with a unit") as info:
        parse_duration(text, bare=None)
    assert "200ms" in info.value.hint


@pytest.mark.parametrize(
    ("text", "kbps"), [("100KB/s", 100), ("2MB/s", 2000), ("1.5mb/s", 1500), ("7kb/s", 7)]
)
def test_rates_in_kilobytes_per_second(text: str, kbps: int) -> None:
    assert parse_rate_kbps(text) == kbps


@pytest.mark.parametrize("text", ["100", "100KB", "fast", "0.5KB/s", "1Gb/s"])
def test_malformed_rates_are_refused(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_rate_kbps(text)


def test_a_timestamp_must_name_its_time_zone() -> None:
    assert parse_timestamp("2026-11-22 10:30:00+00").utcoffset() is not None
    with pytest.raises(ConfigError, match="no time zone"):
        parse_timestamp("2026-11-22 10:30:00")
    with pytest.raises(ConfigError, match="not a timestamp"):
        parse_timestamp("yesterday")
