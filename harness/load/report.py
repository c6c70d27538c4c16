"""What a load run measured: per-request records cut into windows, percentiles per request
type, thresholds, and the timeline plot.

Locust's own CSV and HTML reports cover the whole run; the harness reads every request
Locust logged (one CSV per load process) so it can separate the ramp, the steady state, a
fault window and the recovery, with exact percentiles.
"""

from __future__ import annotations

import csv
import io
import math
import re
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from harness.core.errors import ConfigError
from harness.reports import timeline

ALL = "*"  # the aggregate over every request type, in stats and limits
EACH = "each"  # in limits: every request type on its own, unless it has a limit of its own
METRICS = ("p50", "p95", "p99", "errors")
REQUEST_LOGS = "requests-*.csv"  # one per load process (loadtests/locustfile.py)
LIMIT_SYNTAX = re.compile(r"^(?:(?P<request>[a-z_]+):)?(?P<metric>\w+)=(?P<value>[0-9.]+)$")


@dataclass(frozen=True)
class RequestRecord:
    at: float  # epoch seconds when the request started
    name: str
    kind: str  # rw or ro: the endpoint it went to
    ms: float
    ok: bool
    error: str


def request_of(row: dict[str, str]) -> RequestRecord | None:
    """One row of a request log; None for a row cut short (a killed process, or one still
    being written)."""
    try:
        return RequestRecord(
            at=float(row["timestamp"]),
            name=row["name"],
            kind=row["request_type"],
            ms=float(row["response_time_ms"]),
            ok=not row["exception"],
            error=row["exception"],
        )
    except (KeyError, TypeError, ValueError):
        return None


def read_request_logs(directory: Path) -> list[RequestRecord]:
    """Every request of every load process, in start order (Locust's CsvRequestLogger files)."""
    records: list[RequestRecord] = []
    for path in sorted(directory.glob(REQUEST_LOGS)):
        with path.open(newline="", encoding="utf-8") as f:
            records += [r for r in map(request_of, csv.DictReader(f)) if r is not None]
    records.sort(key=lambda r: r.at)
    return records


class RequestTail:
    """The rows the load processes have flushed to their request logs since the last look:
    only whole lines, so a row Locust is still writing is read the next time."""

    def __init__(self, directory: Path) -> None:
        self.directory = directory
        self._read: dict[Path, int] = {}  # bytes consumed per file
        self._header: dict[Path, list[str]] = {}

    def new(self) -> list[RequestRecord]:
        records: list[RequestRecord] = []
        for path in sorted(self.directory.glob(REQUEST_LOGS)):
            with path.open("rb") as f:
                f.seek(self._read.get(path, 0))
                chunk = f.read()
            whole = chunk.rfind(b"\n") + 1
            self._read[path] = self._read.get(path, 0) + whole
            rows = csv.reader(io.StringIO(chunk[:whole].decode("utf-8", errors="replace")))
            for row in rows:
                header = self._header.setdefault(path, row)
                if row is not header:
                    record = request_of(dict(zip(header, row, strict=False)))
                    records += [record] if record else []
        return records


@dataclass(frozen=True)
class Window:
    name: str  # ramp, steady, then fault, recovery or import, after
    start: float  # epoch seconds
    end: float

    @property
    def seconds(self) -> float:
        return max(0.0, self.end - self.start)

    def holds(self, record: RequestRecord) -> bool:
        return self.start <= record.at < self.end


@dataclass(frozen=True)
class Stats:
    name: str  # a request type, or ALL
    kind: str  # rw, ro, or "" for the aggregate
    count: int
    errors: int
    rps: float
    p50: float
    p95: float
    p99: float
    max: float

    @property
    def error_ratio(self) -> float:
        return self.errors / self.count if self.count else 0.0

    def metric(self, metric: str) -> float:
        return self.error_ratio if metric == "errors" else float(getattr(self, metric))


percentile = timeline.nearest_rank


def summarise(name: str, kind: str, records: Sequence[RequestRecord], seconds: float) -> Stats:
    """Latency percentiles count successful requests only: a refused one is an error, not fast."""
    ms = sorted(r.ms for r in records if r.ok)
    errors = sum(not r.ok for r in records)
    rps = len(records) / seconds if seconds > 0 else 0.0
    return Stats(
        name,
        kind,
        len(records),
        errors,
        rps,
        percentile(ms, 50),
        percentile(ms, 95),
        percentile(ms, 99),
        ms[-1] if ms else math.nan,
    )


def window_stats(records: Iterable[RequestRecord], window: Window) -> list[Stats]:
    """One row per request type, then the aggregate (ALL)."""
    inside = [r for r in records if window.holds(r)]
    by_name: dict[str, list[RequestRecord]] = defaultdict(list)
    for r in inside:
        by_name[r.name].append(r)
    rows = [summarise(name, rs[0].kind, rs, window.seconds) for name, rs in sorted(by_name.items())]
    return [*rows, summarise(ALL, "", inside, window.seconds)]


@dataclass(frozen=True)
class Limit:
    """A threshold: the metric of a request type, of each type, or of all requests together
    must stay below value. An aggregate hides a slow type behind many fast ones, hence EACH."""

    request: str  # a request name, EACH or ALL
    metric: str  # p50, p95, p99 (ms) or errors (ratio of failed requests)
    value: float

    def __str__(self) -> str:
        scope = "" if self.request == ALL else f"{self.request}:"
        return f"{scope}{self.metric}={self.value:g}"

    def breached_by(self, stats: Stats) -> bool:
        """Latency must be under the limit; the error ratio may reach it but not exceed it."""
        observed = stats.metric(self.metric)
        if math.isnan(observed):
            return False
        return observed > self.value if self.metric == "errors" else observed >= self.value


def parse_limit(text: str, request_names: Sequence[str]) -> Limit:
    """`p95=100`, `errors=0.001`, per request type `search_leads:p99=50`, or for every
    request type on its own `each:p95=100`."""
    match = LIMIT_SYNTAX.match(text.strip())
    if not match:
        raise ConfigError(
            f"threshold {text!r} is not [REQUEST:]METRIC=VALUE",
            "e.g. p95=100, errors=0.001, each:p95=100 or search_leads:p99=50",
        )
    request, metric = match["request"] or ALL, match["metric"]
    if metric not in METRICS:
        raise ConfigError(
            f"threshold {text!r}: unknown metric {metric!r}", f"metrics: {', '.join(METRICS)}"
        )
    if request not in (ALL, EACH) and request not in request_names:
        raise ConfigError(
            f"threshold {text!r}: unknown request type {request!r}",
            f"request types: {', '.join(request_names)}, or {EACH} for every one",
        )
    value = float(match["value"])
    if metric == "errors" and not 0 <= value <= 1:
        raise ConfigError(
            f"threshold {text!r}: an error ratio is between 0 and 1", "e.g. errors=0.001 for 0.1 %"
        )
    if metric != "errors" and value <= 0:
        raise ConfigError(f"threshold {text!r}: a latency limit must be above 0 ms", "")
    return Limit(request, metric, value)


def merge_limits(defaults: Sequence[Limit], overrides: Sequence[Limit]) -> list[Limit]:
    """An override replaces the default of the same request type and metric."""
    keyed = {(lim.request, lim.metric): lim for lim in [*defaults, *overrides]}
    return list(keyed.values())


def applied(stats: Sequence[Stats], limits: Sequence[Limit]) -> list[tuple[Limit, Stats]]:
    """Each limit with the rows it judges: EACH judges every request type that has no limit
    of its own for that metric; rows without requests are judged by nothing."""
    own = {(lim.request, lim.metric) for lim in limits if lim.request not in (ALL, EACH)}
    pairs = []
    for limit in limits:
        for s in stats:
            if s.count == 0:
                continue
            if limit.request == EACH:
                if s.name != ALL and (s.name, limit.metric) not in own:
                    pairs.append((limit, s))
            elif s.name == limit.request:
                pairs.append((limit, s))
    return pairs


def breaches(stats: Sequence[Stats], limits: Sequence[Limit]) -> list[str]:
    """One line per breach, naming the request type (or all requests) that breached."""
    found = []
    for limit, s in applied(stats, limits):
        if limit.breached_by(s):
            observed = s.metric(limit.metric)
            shown = f"{observed:.4%}" if limit.metric == "errors" else f"{observed:.1f} ms"
            bound = f"{limit.value:.4%}" if limit.metric == "errors" else f"{limit.value:g} ms"
            who = "all requests" if s.name == ALL else s.name
            scope = ", each request type" if limit.request == EACH else ""
            found.append(f"{who}: {limit.metric} {shown} (limit {bound}{scope})")
    return found


@dataclass(frozen=True)
class ErrorSpan:
    """When users saw errors after a fault: the first and last failed request, in seconds."""

    errors: int
    first_after: float | None
    last_after: float | None

    @property
    def seconds(self) -> float:
        if self.first_after is None or self.last_after is None:
            return 0.0
        return self.last_after - self.first_after


def error_span(records: Iterable[RequestRecord], since: float) -> ErrorSpan:
    failed = [r.at - since for r in records if not r.ok and r.at >= since]
    if not failed:
        return ErrorSpan(0, None, None)
    return ErrorSpan(len(failed), min(failed), max(failed))


def stats_json(stats: Sequence[Stats]) -> list[dict[str, Any]]:
    return [{**asdict(s), "error_ratio": s.error_ratio} for s in stats]


WINDOW_COLOURS = {"ramp": "grey", "fault": "orange", "recovery": "tab:green", "import": "tab:blue"}


def plot_timeline(
    records: Sequence[RequestRecord], windows: Sequence[Window], path: Path, title: str
) -> None:
    """Throughput, errors and p95 latency over time, with the windows shaded."""
    if not records:
        return
    origin = records[0].at
    timeline.plot(
        (timeline.Event(r.at - origin, r.ok, r.ms) for r in records),
        path,
        title=title,
        ok_label="ok requests/s",
        latency_quantile=95,
        log_latency=True,
        spans=[
            timeline.Span(w.start - origin, w.end - origin, WINDOW_COLOURS[w.name])
            for w in windows
            if w.name in WINDOW_COLOURS
        ],
    )
