"""The units a user types: durations, rates, sizes and timestamps, one grammar each."""

from __future__ import annotations

import re
from datetime import datetime
from typing import Literal

from harness.core.errors import ConfigError

DURATION = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>ms|s|m|h)?$")
DURATION_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
SIZE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>b|kb|mb|gb)?$", re.IGNORECASE)
SIZE_UNITS = {"b": 1, "kb": 1024, "mb": 1024**2, "gb": 1024**3}
RATE = re.compile(r"^(?P<number>\d+(?:\.\d+)?)(?P<unit>kb|mb)/s$", re.IGNORECASE)


def parse_duration(text: str, *, bare: Literal["s"] | None = "s") -> float:
    """Seconds from `200ms`, `1.5s`, `3m`, `1h`, or `0`.

    A number without a unit means seconds, unless `bare` is None: then only `0` may go
    without one (a fault's `200` could mean 200 ms or 200 s, so it is refused)."""
    match = DURATION.match(text.strip().lower())
    if match and match["unit"] is None and bare is None and float(match["number"]) != 0:
        match = None
    if not match:
        example = "200ms, 1.5s, 3m or 1h" + (" (a bare number is seconds)" if bare else "")
        raise ConfigError(f"duration {text!r} is not a number with a unit", f"e.g. {example}")
    return float(match["number"]) * DURATION_UNITS[match["unit"] or "s"]


def parse_rate_kbps(text: str) -> int:
    """`100KB/s` or `2MB/s` to KB/s (1 KB = 1000 bytes, as Toxiproxy counts)."""
    match = RATE.match(text.strip())
    if not match:
        raise ConfigError(f"malformed rate {text!r}", "write it like 100KB/s or 2MB/s")
    value = float(match["number"]) * (1000 if match["unit"].lower() == "mb" else 1)
    if value < 1:
        raise ConfigError(f"rate {text!r} is below 1 KB/s", "use at least 1KB/s")
    return round(value)


def parse_timestamp(text: str) -> datetime:
    """An ISO timestamp that names its time zone: a restore point must not be ambiguous."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(f"{text!r} is not a timestamp", "e.g. '2026-11-22 10:30:00+00'") from None
    if when.tzinfo is None:
        raise ConfigError(f"{text!r} has no time zone", "add one, e.g. +00 for UTC")
    return when


def parse_size(text: str) -> int:
    """Bytes from `512`, `64kB`, `16MB`, `1GB` (1024-based, as PostgreSQL counts WAL)."""
    match = SIZE.match(text.strip())
    if not match:
        raise ConfigError(f"size {text!r} is not a number of bytes", "e.g. 16MB, 512kB or 1GB")
    return round(float(match["number"]) * SIZE_UNITS[(match["unit"] or "b").lower()])


def format_bytes(n: int) -> str:
    """A size as PostgreSQL's pg_size_pretty writes it."""
    size = float(n)
    for unit in ("bytes", "kB", "MB", "GB"):
        if abs(size) < 10240 or unit == "GB":
            return f"{size:.0f} {unit}"
        size /= 1024
    return f"{size:.0f} GB"
