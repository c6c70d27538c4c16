from __future__ import annotations

import pytest

from harness.core.errors import ConfigError
from harness.faults.controller import parse_duration_ms, parse_rate_kbps


@pytest.mark.parametrize(
    ("text", "ms"), [("0", 0), ("200ms", 200), ("1.5s", 1500), ("2s", 2000), ("0ms", 0)]
)
def test_durations(text: str, ms: int) -> None:
    assert parse_duration_ms(text) == ms


@pytest.mark.parametrize("text", ["200", "2h", "-5ms", "fast", "1.5", ""])
def test_malformed_durations_say_how_to_write_them(text: str) -> None:
    with pytest.raises(ConfigError, match="malformed duration") as info:
        parse_duration_ms(text)
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
