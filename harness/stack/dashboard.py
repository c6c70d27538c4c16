"""Pictures instead of dashboards (Grafana is not packaged in Debian): PNG panels of what the
lab's Prometheus recorded over a window, with the alerts that fired shaded on every panel.

The queries read what the exporters really export. CPU and memory are per scraped process
(etcd, the exporters, Prometheus's own targets) and the host's: no exporter here sees a
container's cgroup, so PostgreSQL's own CPU is the host's share, not a series of its own.
"""

from __future__ import annotations

import string
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from harness.clients.monitoring import PrometheusClient
from harness.reports.panels import Bar, Line, plot_bars, plot_lines
from harness.reports.timeline import Span

# Prometheus returns at most 11,000 points per series; a few hundred draw a clear line.
MAX_POINTS = 600
MIN_STEP = 5.0  # the scrape interval: finer steps only repeat samples
RATE_WINDOW = "30s"  # six scrapes: enough for rate() to survive a missed one


@dataclass(frozen=True)
class Query:
    expr: str
    legend: str  # a format string over the series' labels, e.g. "{instance}"


@dataclass(frozen=True)
class Panel:
    name: str  # the PNG's file name, without .png
    title: str
    ylabel: str
    queries: tuple[Query, ...]
    steps: bool = False  # states (0/1, counts of servers) draw as steps


def _rate(metric: str, by: str = "instance") -> str:
    return f"sum by ({by}) (rate({metric}[{RATE_WINDOW}]))"


PANELS = (
    Panel("leader", "leader per node (1 = primary)", "primary",
          (Query("patroni_primary", "{instance}"),), steps=True),
    Panel("timeline", "timeline (a promotion starts the next)", "timeline",
          (Query("max by (scope) (patroni_postgres_timeline)", "{scope}"),), steps=True),
    Panel("replication-lag", "replication lag per replica", "seconds",
          (Query("pg_replication_lag_seconds", "{instance}"),)),
    Panel("commits", "commits/s per node", "commits/s",
          (Query(_rate("pg_stat_database_xact_commit"), "{instance}"),)),
    Panel("connections", "connections per node", "connections",
          (Query("sum by (instance) (pg_stat_activity_count)", "{instance}"),)),
    Panel("pool", "PgBouncer clients: active and waiting", "clients", (
        Query("sum(pgbouncer_pools_client_active_connections)", "active"),
        Query("sum(pgbouncer_pools_client_waiting_connections)", "waiting"),
    )),
    Panel("haproxy", "HAProxy servers up per backend", "servers",
          (Query('haproxy_backend_active_servers{proxy=~"rw|ro"}', "{proxy}"),), steps=True),
    Panel("cpu", "CPU: the host, etcd and each exporter's own process", "cores", (
        Query(_rate('node_cpu_seconds_total{mode!="idle"}', by=""), "host (all of it)"),
        Query(_rate("process_cpu_seconds_total", by="job, instance"), "{job}/{instance}"),
    )),
    Panel("memory", "memory (resident): etcd and each exporter's own process", "MiB",
          (Query("process_resident_memory_bytes / 2^20", "{job}/{instance}"),)),
    Panel("checkpoints", "checkpoints per minute per node (timed and requested)", "per minute", (
        Query(f"60 * {_rate('pg_stat_checkpointer_num_timed_total')}", "{instance} timed"),
        Query(f"60 * {_rate('pg_stat_checkpointer_num_requested_total')}", "{instance} requested"),
    )),
)  # fmt: skip
ALERTS_QUERY = 'ALERTS{alertstate="firing"}'


def step_for(start: float, end: float) -> float:
    return max(MIN_STEP, (end - start) / MAX_POINTS)


def _legend(template: str, labels: dict[str, str]) -> str:
    return template.format_map({k: labels.get(k, "") for k in _fields(template)} | labels)


def _fields(template: str) -> list[str]:
    return [f for _, f, _, _ in string.Formatter().parse(template) if f]


@dataclass(frozen=True)
class Window:
    start: float  # unix seconds
    end: float
    origin: float  # what the plots call 0 s (the window's start, or a report's own origin)

    def at(self, t: float) -> float:
        return t - self.origin


def fetch_lines(prometheus: PrometheusClient, panel: Panel, window: Window) -> list[Line]:
    step = step_for(window.start, window.end)
    lines = []
    for q in panel.queries:
        for labels, values in prometheus.query_range(q.expr, window.start, window.end, step):
            points = tuple((window.at(t), v) for t, v in values)
            lines.append(Line(_legend(q.legend, labels), points))
    return sorted(lines, key=lambda line: line.label)


def fetch_alerts(prometheus: PrometheusClient, window: Window) -> list[Bar]:
    """Each firing stretch of each alert: consecutive samples a step apart are one stretch."""
    step = step_for(window.start, window.end)
    bars = []
    for labels, values in prometheus.query_range(ALERTS_QUERY, window.start, window.end, step):
        where = labels.get("instance") or labels.get("scope") or labels.get("proxy") or ""
        label = labels.get("alertname", "?") + (f" ({where})" if where else "")
        begin = last = None
        for t, _ in values:
            if begin is None or last is None or t - last > step * 1.5:
                if begin is not None and last is not None:
                    bars.append(Bar(label, window.at(begin), window.at(last + step)))
                begin = t
            last = t
        if begin is not None and last is not None:
            bars.append(Bar(label, window.at(begin), window.at(last + step)))
    return bars


def draw(
    prometheus: PrometheusClient,
    window: Window,
    out: Path,
    *,
    panels: Sequence[Panel] = PANELS,
    marks: Sequence[float] = (),
) -> list[Path]:
    """Every panel as a PNG in `out`, the alerts' panel first, and an index.html of them.
    Everything is fetched before anything is written: an unreachable Prometheus leaves no
    half-drawn folder."""
    bars = fetch_alerts(prometheus, window)
    fetched = [(panel, fetch_lines(prometheus, panel, window)) for panel in panels]
    out.mkdir(parents=True, exist_ok=True)
    spans = [Span(b.start, b.end, "tab:red", 0.08) for b in bars]
    end = window.at(window.end)
    when = datetime.fromtimestamp(window.start, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
    written = [out / "alerts.png"]
    plot_bars(bars, written[0], title=f"alerts firing (from {when})", end=end, marks=marks)
    for panel, lines in fetched:
        path = out / f"{panel.name}.png"
        plot_lines(
            lines,
            path,
            title=panel.title,
            ylabel=panel.ylabel,
            end=end,
            spans=spans,
            marks=marks,
            steps=panel.steps,
        )
        written.append(path)
    images = "\n".join(f'<p><img src="{p.name}" alt="{p.stem}"></p>' for p in written)
    (out / "index.html").write_text(
        f"<!doctype html><title>gardenlab from {when}</title>\n<h1>gardenlab from {when}</h1>\n"
        f"{images}\n"
    )
    return written


def draw_window(
    url: str, window: Window, out: Path, *, marks: Sequence[float] = (), timeout: float = 10.0
) -> list[Path]:
    """The panels of one window from the Prometheus at `url`: what `harness dashboard` draws,
    and what a chaos, load or migration-drill report adds for its own run."""
    prometheus = PrometheusClient(url, timeout=timeout)
    try:
        return draw(prometheus, window, out, marks=marks)
    finally:
        prometheus.close()
