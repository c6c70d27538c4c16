"""Monitoring as one source: the alert rules, Prometheus's scrape jobs and Alertmanager's routing,
rendered for the lab's containers and, from an inventory, for a monitoring server.

The rules are the same text in both places; only the targets differ (a `Targets`), so an alert
the lab proves under a fault is the alert production runs. Metric names are those the Debian 13
packages export (Patroni 4 says `patroni_primary`: rules written for `patroni_master` never fire).
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from harness.clients.addresses import http_url
from harness.lab.tls import LAB_PATHS
from harness.lab.topology import (
    ALERT_LOG,
    ALERT_LOG_PORT,
    ALERTMANAGER,
    ALERTMANAGER_PORT,
    ETCD_MEMBERS,
    ETCD_METRICS_PORT,
    HAPROXY,
    HAPROXY_METRICS_PORT,
    NODE_EXPORTER_PORT,
    NODES,
    PGBACKREST_EXPORTER_PORT,
    PGBOUNCER,
    PGBOUNCER_EXPORTER_PORT,
    POSTGRES_EXPORTER_PORT,
    REST_PORT,
    SCOPE,
    postgres_exporter,
)

RULES_FILE = "alerts.yml"
MONITORING_IMAGE = "gardenlab/monitoring:2.53"  # Prometheus, Alertmanager, promtool, exporters
PROMETHEUS_DIR = "/etc/prometheus"  # where the lab's Prometheus reads the rendered files
# How often Prometheus looks; alerts' `for` durations are multiples of it.
SCRAPE_INTERVAL = "5s"
EVALUATION_INTERVAL = "5s"
# The latency histogram the load and the chaos workload export (seconds, per request).
LATENCY_HISTOGRAM = "gardenlab_query_duration_seconds"


@dataclass(frozen=True)
class Alert:
    name: str
    expr: str
    for_: str  # how long the condition must hold; "0s" fires at the first evaluation
    severity: str  # "critical" pages; "warning" waits for working hours
    summary: str
    labels: dict[str, str] = field(default_factory=dict)

    def rule(self) -> dict[str, Any]:
        return {
            "alert": self.name,
            "expr": self.expr,
            "for": self.for_,
            "labels": {"severity": self.severity, **self.labels},
            "annotations": {"summary": self.summary},
        }


# Recorded so a rule can ask how a cluster-wide value moved (`changes` needs one series).
RECORDINGS = {
    "gardenlab:patroni_timeline:max": "max by (scope) (patroni_postgres_timeline)",
}

ALERTS = (
    Alert(
        "PatroniLeaderChanged",
        "gardenlab:patroni_timeline:max"
        " and on (scope) changes(gardenlab:patroni_timeline:max[1m]) > 0",
        "0s",
        "warning",
        "a replica was promoted: the cluster moved to timeline {{ $value }} within a minute",
        # each promotion is an alert of its own, told apart by the timeline it started
        {"timeline": "{{ $value }}"},
    ),
    Alert(
        "PatroniNoLeader",
        "max by (scope) (patroni_primary) < 1 or absent(patroni_primary)",
        "10s",
        "critical",
        "no Patroni member reports itself primary (or none answers): writes are down",
    ),
    Alert(
        "PatroniTwoPrimaries",
        "count by (scope) (patroni_primary == 1) > 1",
        "10s",
        "critical",
        "two Patroni members report themselves primary: split brain",
    ),
    Alert(
        "HaproxyRwNoBackend",
        'haproxy_backend_active_servers{proxy="rw"} < 1',
        "5s",
        "critical",
        "HAProxy's read-write port has no backend up: writes fail",
    ),
    Alert(
        "HaproxyRwTwoBackends",
        'haproxy_backend_active_servers{proxy="rw"} > 1',
        "5s",
        "critical",
        "HAProxy's read-write port routes to two backends",
    ),
    Alert(
        "InstanceDown",
        "up == 0",
        "10s",
        "critical",
        "{{ $labels.job }} target {{ $labels.instance }} does not answer scrapes",
    ),
    Alert(
        "PostgresDown",
        "pg_up == 0",
        "10s",
        "critical",
        "PostgreSQL at {{ $labels.instance }} does not accept the exporter's connection",
    ),
    Alert(
        "EtcdNoLeader",
        "etcd_server_has_leader == 0",
        "5s",
        "critical",
        "etcd member {{ $labels.instance }} has no leader",
    ),
    Alert(
        "EtcdInsufficientMembers",
        'sum(up{job="etcd"}) < floor(count(up{job="etcd"}) / 2) + 1',
        "10s",
        "critical",
        "fewer etcd members answer than a quorum needs",
    ),
    Alert(
        "ReplicationLagHigh",
        "pg_replication_lag_seconds > 30",
        "1m",
        "warning",
        "replica {{ $labels.instance }} replays more than 30 s behind",
    ),
    Alert(
        "ConnectionsSaturated",
        "sum by (instance) (pg_stat_activity_count)"
        " / on (instance) max by (instance) (pg_settings_max_connections) > 0.8",
        "1m",
        "warning",
        "{{ $labels.instance }} uses over 80 % of max_connections",
    ),
    Alert(
        "PgbouncerClientsWaiting",
        "sum by (instance) (pgbouncer_pools_client_waiting_connections) > 0",
        "30s",
        "warning",
        "PgBouncer clients have waited for a server connection for 30 s",
    ),
    Alert(
        # stuck, not merely failed once: the archiver retries one segment until it goes, so
        # failures with nothing archived for 2 minutes means WAL piles up (a lab's first
        # attempts before its stanza exists fail, then succeed: no alert)
        "WalArchivingFailing",
        "increase(pg_stat_archiver_failed_count[2m]) > 0"
        " and on (instance) increase(pg_stat_archiver_archived_count[2m]) == 0",
        "2m",
        "critical",
        "archive_command fails on {{ $labels.instance }}: point-in-time recovery is at risk",
    ),
    Alert(
        "BackupFailed",
        "gardenlab_backup_last_status != 0",
        "0s",
        "critical",
        "the last pgBackRest backup failed: investigate now",
    ),
    Alert(
        "BackupTooOld",
        "min by (stanza) (pgbackrest_backup_since_last_completion_seconds) > 26 * 3600",
        "0s",
        "critical",
        "no backup of {{ $labels.stanza }} completed in 26 hours",
    ),
    Alert(
        "HostCpuHigh",
        '1 - avg by (instance) (rate(node_cpu_seconds_total{mode="idle"}[1m])) > 0.8',
        "5m",
        "warning",
        "{{ $labels.instance }} CPU above 80 % for 5 minutes",
    ),
    Alert(
        "HostDiskFull",
        '1 - node_filesystem_avail_bytes{fstype!~"tmpfs|ramfs"}'
        ' / node_filesystem_size_bytes{fstype!~"tmpfs|ramfs"} > 0.85',
        "5m",
        "warning",
        "{{ $labels.mountpoint }} on {{ $labels.instance }} is over 85 % full",
    ),
    Alert(
        "QueryLatencyHigh",
        f"histogram_quantile(0.95, sum by (le) (rate({LATENCY_HISTOGRAM}_bucket[1m]))) > 0.5",
        "1m",
        "warning",
        "client query latency p95 above 500 ms for a minute",
    ),
)
ALERT_NAMES = tuple(a.name for a in ALERTS)
# Series a healthy lab at rest does not export: they appear with what they measure (a backup
# run by the harness, a backup completed, the load's or the workload's histogram).
EXPORTED_LATER = frozenset(
    {
        "gardenlab_backup_last_status",
        "pgbackrest_backup_since_last_completion_seconds",
        f"{LATENCY_HISTOGRAM}_bucket",
    }
)
_NAME = re.compile(r"[a-z_][a-z0-9_:]*")


def metrics_of(expr: str) -> set[str]:
    """The metric names an expression reads (a recorded series stands for what it records)."""
    # label matchers and grouping lists name labels, not metrics
    bare = re.sub(r"\{[^}]*\}|\b(?:by|on|without)\s*\([^)]*\)", " ", expr)
    names = set()
    for match in _NAME.finditer(bare):
        rest = bare[match.end() :].lstrip()
        if "_" in match.group() and not rest.startswith("("):
            names.add(match.group())
    recorded = {n for n in names if n in RECORDINGS}
    return (names - recorded) | {m for n in recorded for m in metrics_of(RECORDINGS[n])}


def rule_metrics() -> set[str]:
    """The metric names the alerts read: what some target must export, or the rule is blind."""
    return {m for alert in ALERTS for m in metrics_of(alert.expr)}


# What each scrape job exports that a rule reads (the integration test asks the running lab's
# Prometheus for each, per job). A rule reading anything else reads nothing: `harness up`
# refuses it before anything starts (Patroni 4's `patroni_master` is gone, for one).
EXPORTS: dict[str, frozenset[str]] = {
    "patroni": frozenset({"patroni_primary", "patroni_postgres_timeline"}),
    "postgres": frozenset(
        {
            "pg_up",
            "pg_replication_lag_seconds",
            "pg_settings_max_connections",
            "pg_stat_activity_count",
            "pg_stat_archiver_archived_count",
            "pg_stat_archiver_failed_count",
        }
    ),
    "etcd": frozenset({"etcd_server_has_leader"}),
    "haproxy": frozenset({"haproxy_backend_active_servers"}),
    "pgbouncer": frozenset({"pgbouncer_pools_client_waiting_connections"}),
    "pgbackrest": frozenset({"pgbackrest_backup_since_last_completion_seconds"}),
    # the host's, and the textfile collector's: the backup's outcome, the latency histograms
    "node": frozenset(
        {
            "node_cpu_seconds_total",
            "node_filesystem_avail_bytes",
            "node_filesystem_size_bytes",
            "gardenlab_backup_last_status",
            f"{LATENCY_HISTOGRAM}_bucket",
        }
    ),
}


def blind_rules(where: str = RULES_FILE, alerts: Sequence[Alert] = ALERTS) -> list[str]:
    """`WHERE:LINE: ...` for each rule reading a metric no job exports (EXPORTS), the line
    the rule's in the rendered file."""
    exported = frozenset().union(*EXPORTS.values())
    lines = alert_rules(alerts).splitlines()
    found = []
    for alert in alerts:
        missing = sorted(metrics_of(alert.expr) - exported)
        if missing:
            line = 1 + next(i for i, t in enumerate(lines) if t.strip() == f"- alert: {alert.name}")
            found.append(
                f"{where}:{line}: rule {alert.name} reads {', '.join(missing)}, which no "
                "target exports"
            )
    return found


def alert_rules(alerts: Sequence[Alert] = ALERTS) -> str:
    """The rule file Prometheus loads (and `promtool test rules` tests)."""
    groups = [
        {
            "name": "gardenlab-recordings",
            "rules": [{"record": name, "expr": expr} for name, expr in RECORDINGS.items()],
        },
        {"name": "gardenlab-alerts", "rules": [a.rule() for a in alerts]},
    ]
    header = "# Rendered by gardenlab (harness/config/monitoring.py). Do not edit.\n"
    return header + yaml.safe_dump({"groups": groups}, sort_keys=False, width=120)


# promtool's refusals: "FILE: LINE:COL: what" (a rule) or "FILE: yaml: line N: what" (YAML)
_REFUSAL = re.compile(
    r"^(?P<file>/\S+?): (?:yaml: line (?P<yaml_line>\d+)|(?P<line>\d+):\d+): (?P<what>.+)$",
    re.M,
)


def promtool_refusal(output: str, inside: str, outside: Path) -> str:
    """promtool's first refusal as `file:line: what`, the file named where it is on this
    machine (promtool ran in a container with `outside` mounted at `inside`)."""
    found = _REFUSAL.search(output)
    if found is None:
        last = ([line.strip() for line in output.splitlines() if line.strip()] or ["?"])[-1]
        return f"{outside}: promtool refuses the monitoring configuration: {last}"
    path = found["file"].replace(inside, str(outside), 1)
    return f"{path}:{found['line'] or found['yaml_line']}: {found['what'].strip()}"


BACKUP_OUTCOME_FILE = "gardenlab_backup.prom"  # in node_exporter's textfile directory


def write_textfile(directory: Path, name: str, text: str) -> None:
    """Written whole, then renamed, as node_exporter's textfile collector asks."""
    directory.mkdir(parents=True, exist_ok=True)
    partial = directory / f".{name}.partial"
    partial.write_text(text)
    partial.replace(directory / name)


# Upper bounds in seconds: fine around the plans' 500 ms p95, coarse up to a failover's seconds.
LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class LatencyHistogram:
    """Client query latencies as Prometheus's histogram type counts them (cumulative buckets,
    sum, count), for QueryLatencyHigh; thread-safe, so every writer observes into one."""

    def __init__(self, source: str) -> None:
        self.source = source
        self._counts = [0] * len(LATENCY_BUCKETS)
        self._total = 0
        self._sum = 0.0
        self._lock = threading.Lock()

    def observe(self, seconds: float) -> None:
        with self._lock:
            self._total += 1
            self._sum += seconds
            for i, bound in enumerate(LATENCY_BUCKETS):
                if seconds <= bound:
                    self._counts[i] += 1

    def exposition(self) -> str:
        name, labels = LATENCY_HISTOGRAM, f'source="{self.source}"'
        with self._lock:
            counts, total, sum_ = list(self._counts), self._total, self._sum
        lines = [
            f"# HELP {name} client query latency, by what ran the queries",
            f"# TYPE {name} histogram",
            *(
                f'{name}_bucket{{{labels},le="{bound:g}"}} {n}'
                for bound, n in zip(LATENCY_BUCKETS, counts, strict=True)
            ),
            f'{name}_bucket{{{labels},le="+Inf"}} {total}',
            f"{name}_sum{{{labels}}} {sum_:.6f}",
            f"{name}_count{{{labels}}} {total}",
        ]
        return "\n".join(lines) + "\n"


def latency_file(source: str) -> str:
    """The histogram's file in node_exporter's textfile directory, one per source: the chaos
    workload and the load run side by side in `harness load --scenario`."""
    return f"gardenlab_query_latency_{source}.prom"


class LatencyFile:
    """A latency histogram where node_exporter's textfile collector reads it, so Prometheus
    sees it without scraping the harness: nothing crosses from the lab to the host. Removed
    when its source stops: the series then ends with it."""

    def __init__(self, directory: Path, source: str) -> None:
        self.directory = directory
        self.name = latency_file(source)
        self.histogram = LatencyHistogram(source)

    def publish(self) -> None:
        write_textfile(self.directory, self.name, self.histogram.exposition())

    def remove(self) -> None:
        (self.directory / self.name).unlink(missing_ok=True)


def backup_outcome(failed: bool, kind: str, at: float) -> str:
    """What the backup command says of its own run, for node_exporter's textfile collector:
    a failed backup leaves nothing in `pgbackrest info`, so only the command can tell."""
    labels = f'stanza="{SCOPE}",type="{kind}"'
    return (
        "# HELP gardenlab_backup_last_status 0 when the last backup succeeded, 1 when it failed\n"
        "# TYPE gardenlab_backup_last_status gauge\n"
        f"gardenlab_backup_last_status{{{labels}}} {int(failed)}\n"
        "# HELP gardenlab_backup_last_run_timestamp_seconds when the last backup ended\n"
        "# TYPE gardenlab_backup_last_run_timestamp_seconds gauge\n"
        f"gardenlab_backup_last_run_timestamp_seconds{{{labels}}} {at:.0f}\n"
    )


# Debian's own textfile directory (the package makes it): the lab mounts its rendered one there.
TEXTFILE_PATH = "/var/lib/prometheus/node-exporter"


@dataclass(frozen=True)
class Exporter:
    """An exporter as the lab's container and a server's systemd unit both run it: Debian's
    package, whose unit reads ARGS (and its connection string) from /etc/default/<package>."""

    package: str
    port: int
    flags: tuple[str, ...] = ()

    def args(self) -> tuple[str, ...]:
        return (f"--web.listen-address=:{self.port}", *self.flags)

    def command(self) -> tuple[str, ...]:
        return (self.package, *self.args())

    def defaults(self, environment: dict[str, str] | None = None) -> str:
        """/etc/default/<package> for a server (systemd's EnvironmentFile syntax)."""
        settings = {**(environment or {}), "ARGS": " ".join(self.args())}
        return "# Rendered by gardenlab (harness/config/monitoring.py). Do not edit.\n" + "".join(
            f"{key}='{value}'\n" for key, value in settings.items()
        )


POSTGRES_EXPORTER = Exporter(
    # stat_checkpointer (PostgreSQL 17's checkpoint counters) is off by default: the dashboard
    # draws it
    "prometheus-postgres-exporter",
    POSTGRES_EXPORTER_PORT,
    ("--collector.stat_checkpointer",),
)
PGBOUNCER_EXPORTER = Exporter("prometheus-pgbouncer-exporter", PGBOUNCER_EXPORTER_PORT)
PGBACKREST_EXPORTER = Exporter(
    # `pgbackrest info` every 30 s: its default 600 s leaves a finished backup unseen for long
    "prometheus-pgbackrest-exporter",
    PGBACKREST_EXPORTER_PORT,
    ("--collect.interval=30",),
)
NODE_EXPORTER = Exporter(
    "prometheus-node-exporter",
    NODE_EXPORTER_PORT,
    (f"--collector.textfile.directory={TEXTFILE_PATH}",),
)


@dataclass(frozen=True)
class Targets:
    """host:port per scrape job: the lab's services, or an inventory's servers. Jobs in
    `discovered` also scrape what their file under targets/ lists (members that come and go)."""

    jobs: tuple[tuple[str, tuple[str, ...]], ...]
    alertmanagers: tuple[str, ...]
    https_ca: str | None = None  # the CA the TLS_JOBS' certificates are verified with
    discovered: tuple[str, ...] = ()


# Jobs whose targets serve /metrics on HTTPS when the site has TLS: Patroni's REST API.
TLS_JOBS = frozenset({"patroni"})


def scrape_tls(job: str, ca_file: str | None) -> dict[str, Any]:
    """HTTPS for a TLS job, verified against the CA by the target's name (pg1, an address)."""
    if ca_file is None or job not in TLS_JOBS:
        return {}
    return {"scheme": "https", "tls_config": {"ca_file": ca_file}}


LAB_TARGETS = Targets(
    jobs=(
        ("patroni", tuple(f"{n}:{REST_PORT}" for n in NODES)),
        ("postgres", tuple(f"{postgres_exporter(n)}:{POSTGRES_EXPORTER_PORT}" for n in NODES)),
        ("etcd", tuple(f"{m}:{ETCD_METRICS_PORT}" for m in ETCD_MEMBERS)),
        ("haproxy", (f"{HAPROXY}:{HAPROXY_METRICS_PORT}",)),
        ("pgbouncer", (f"{PGBOUNCER}-exporter:{PGBOUNCER_EXPORTER_PORT}",)),
        ("pgbackrest", (f"pgbackrest-exporter:{PGBACKREST_EXPORTER.port}",)),
        ("node", (f"node-exporter:{NODE_EXPORTER_PORT}",)),
    ),
    alertmanagers=(f"{ALERTMANAGER}:{ALERTMANAGER_PORT}",),
    https_ca=LAB_PATHS.ca_file,
    discovered=("patroni", "postgres"),
)
TARGETS_DIR = "targets"  # beside prometheus.yml: one file per discovered job


def member_targets(members: Sequence[str]) -> dict[str, tuple[str, ...]]:
    """The discovered jobs' targets for extra members (pg4, pg5 while `harness scale` runs
    them): their Patroni and their postgres_exporter, named as the static ones are."""
    return {
        "patroni": tuple(f"{n}:{REST_PORT}" for n in members),
        "postgres": tuple(f"{postgres_exporter(n)}:{POSTGRES_EXPORTER_PORT}" for n in members),
    }


def write_member_targets(rendered: Path, members: Sequence[str]) -> None:
    """Prometheus's file discovery reads these at once (and every 5 s at the latest)."""
    for job, hosts in member_targets(members).items():
        text = yaml.safe_dump([{"targets": list(hosts)}] if hosts else [])
        write_textfile(rendered / TARGETS_DIR, f"{job}.yml", text)


def expected_targets(rendered: Path, targets: Targets = LAB_TARGETS) -> int:
    """The static targets and those the discovery files list now: after a scale-in, a member
    gone is no longer expected."""
    listed = 0
    for job in targets.discovered:
        path = rendered / TARGETS_DIR / f"{job}.yml"
        groups = yaml.safe_load(path.read_text()) if path.exists() else None
        listed += sum(len(g.get("targets", [])) for g in groups or [])
    return sum(len(hosts) for _, hosts in targets.jobs) + listed


def prometheus_config(targets: Targets = LAB_TARGETS, rules_dir: str = "/etc/prometheus") -> str:
    config = {
        "global": {
            "scrape_interval": SCRAPE_INTERVAL,
            "scrape_timeout": "4s",
            "evaluation_interval": EVALUATION_INTERVAL,
        },
        "rule_files": [f"{rules_dir}/{RULES_FILE}"],
        "alerting": {
            "alertmanagers": [{"static_configs": [{"targets": list(targets.alertmanagers)}]}]
        },
        "scrape_configs": [
            {
                "job_name": job,
                **scrape_tls(job, targets.https_ca),
                "static_configs": [{"targets": list(hosts)}],
                **(
                    {
                        "file_sd_configs": [
                            {
                                "files": [f"{rules_dir}/{TARGETS_DIR}/{job}.yml"],
                                "refresh_interval": SCRAPE_INTERVAL,
                            }
                        ]
                    }
                    if job in targets.discovered
                    else {}
                ),
                # name the instance by its host, so a rule's label reads pg1, not pg1:8008
                "relabel_configs": [
                    {
                        "source_labels": ["__address__"],
                        "regex": "([^:]+?)(-exporter)?:\\d+",
                        "target_label": "instance",
                        "replacement": "$1",
                    }
                ],
            }
            for job, hosts in targets.jobs
        ],
    }
    header = "# Rendered by gardenlab (harness/config/monitoring.py). Do not edit.\n"
    return header + yaml.safe_dump(config, sort_keys=False)


@dataclass(frozen=True)
class Routing:
    """Alertmanager's timings: the lab's are seconds (a fault is over in a minute)."""

    group_wait: str
    group_interval: str
    repeat_interval: str


LAB_ROUTING = Routing(group_wait="1s", group_interval="5s", repeat_interval="1h")
PRODUCTION_ROUTING = Routing(group_wait="10s", group_interval="1m", repeat_interval="4h")
# The lab's webhook receiver (alertlog/, the alert-log service): what a scenario reads back.
LAB_WEBHOOK = http_url(ALERT_LOG, ALERT_LOG_PORT, "/")


def alertmanager_config(routing: Routing = LAB_ROUTING, webhook: str | None = None) -> str:
    """One receiver; `webhook` (a URL) also gets every firing and resolved notification."""
    receiver: dict[str, Any] = {"name": "gardenlab"}
    if webhook:
        receiver["webhook_configs"] = [{"url": webhook, "send_resolved": True}]
    config = {
        "route": {
            "receiver": "gardenlab",
            "group_by": ["alertname", "instance"],
            "group_wait": routing.group_wait,
            "group_interval": routing.group_interval,
            "repeat_interval": routing.repeat_interval,
        },
        "receivers": [receiver],
    }
    header = "# Rendered by gardenlab (harness/config/monitoring.py). Do not edit.\n"
    return header + yaml.safe_dump(config, sort_keys=False)
