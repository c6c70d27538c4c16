"""Click parameter types for what users type: a bad value is a usage error (exit 2) naming
the value and how to write it, before any command touches the lab."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal

import click

from harness.core.errors import ConfigError
from harness.core.units import parse_duration, parse_rate_kbps, parse_size, parse_timestamp

if TYPE_CHECKING:
    from harness.load.report import Limit


class _Typed(click.ParamType[Any, str]):
    """Runs a parser; its ConfigError becomes click's usage error, with the hint."""

    def parse(self, text: str) -> Any:
        raise NotImplementedError

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if not isinstance(value, str):
            return value
        try:
            return self.parse(value)
        except ConfigError as exc:
            hint = f" ({exc.hint})" if exc.hint else ""
            self.fail(f"{exc.message}{hint}", param, ctx)


class Duration(_Typed):
    """Seconds, from 200ms, 1.5s, 3m, 1h; a bare number is seconds unless `bare` is None."""

    name = "duration"

    def __init__(self, bare: Literal["s"] | None = "s") -> None:
        self.bare = bare

    def parse(self, text: str) -> float:
        return parse_duration(text, bare=self.bare)


class Milliseconds(Duration):
    """A duration as whole milliseconds, as Toxiproxy's attributes take them."""

    def __init__(self) -> None:
        super().__init__(bare=None)

    def parse(self, text: str) -> int:
        return round(parse_duration(text, bare=None) * 1000)


class Rate(_Typed):
    name = "rate"

    def parse(self, text: str) -> int:
        return parse_rate_kbps(text)


class Timestamp(_Typed):
    name = "timestamp"

    def parse(self, text: str) -> datetime:
        return parse_timestamp(text)


class Wait(_Typed):
    """MIN,MAX seconds of think time."""

    name = "min,max"

    def parse(self, text: str) -> tuple[float, float]:
        try:
            low, high = (float(x) for x in text.split(","))
        except ValueError:
            raise ConfigError(
                f"--wait {text!r} is not MIN,MAX in seconds", "e.g. 0.2,1.0"
            ) from None
        return low, high


class TableCount(_Typed):
    """TABLE=N, one table's row count."""

    name = "table=n"

    def parse(self, text: str) -> tuple[str, int]:
        table, _, number = text.partition("=")
        if not number.lstrip("-").isdigit():
            raise ConfigError(f"--count {text!r} is not TABLE=N", "e.g. --count leads=200000")
        return table, int(number)


class Threshold(_Typed):
    """[REQUEST:]METRIC=VALUE, checked against the CRM mix's request types."""

    name = "[request:]metric=value"

    def parse(self, text: str) -> Limit:
        from harness.load.report import parse_limit
        from loadtests.mix import REQUEST_NAMES

        return parse_limit(text, REQUEST_NAMES)


class Size(_Typed):
    """Bytes, from 512, 64kB, 16MB, 1GB."""

    name = "size"

    def parse(self, text: str) -> int:
        return parse_size(text)


class ConnInfo(_Typed):
    """A libpq connection string or postgresql:// URL, checked by libpq's own parser."""

    name = "conninfo"

    def parse(self, text: str) -> str:
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(text)
        except ProgrammingError as exc:
            raise ConfigError(
                f"{text.split('password')[0][:40]!r}... is not a connection string",
                "e.g. 'host=db.example.com port=5432 user=postgres dbname=postgres' or "
                "postgresql://user@host:5432/postgres",
            ) from exc
        return text
