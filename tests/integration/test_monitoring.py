"""Monitoring on the real stack: every target scraped, every metric the rules read exported by
a target (a renamed metric would leave its rule blind), the rules loaded, and a lab at rest
firing nothing, and the webhook receiver logging what Alertmanager sends."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import pytest

from harness.clients.monitoring import AlertLogClient, AlertmanagerClient, PrometheusClient
from harness.config.monitoring import (
    ALERT_NAMES,
    EXPORTED_LATER,
    EXPORTS,
    LAB_TARGETS,
    rule_metrics,
)
from harness.core.polling import poll
from harness.lab.topology import ALERT_LOG, NODES
from harness.stack.dashboard import PANELS, Window, draw, fetch_lines
from harness.stack.lifecycle import Stack

pytestmark = pytest.mark.integration
# The shared 2-core machine may be busy with other work: that is the host's state, not the lab's.
HOST_STATE = {"HostCpuHigh"}


@pytest.fixture
def prometheus(stack: Stack) -> PrometheusClient:
    return PrometheusClient(stack.lab.url("prometheus"), timeout=5)


def test_every_target_is_scraped(prometheus: PrometheusClient) -> None:
    targets = prometheus.targets()
    expected = {(job, len(hosts)) for job, hosts in LAB_TARGETS.jobs}
    assert {(job, sum(t.job == job for t in targets)) for job, _ in LAB_TARGETS.jobs} == expected
    assert [t for t in targets if not t.up] == []


def test_every_metric_the_rules_read_is_exported(prometheus: PrometheusClient) -> None:
    missing = [
        name
        for name in sorted(rule_metrics() - EXPORTED_LATER)
        if not prometheus.query(f'count({{__name__="{name}"}})')
    ]
    assert missing == []
    assert not prometheus.query('count({__name__="patroni_master"})')
    # each job exports what `harness up` believes it does (EXPORTS, its check of blind rules)
    misplaced = [
        f"{job}/{name}"
        for job, names in EXPORTS.items()
        for name in sorted(names - EXPORTED_LATER)
        if not prometheus.query(f'count({{__name__="{name}", job="{job}"}})')
    ]
    assert misplaced == []


def test_the_cluster_reads_healthy_through_its_metrics(prometheus: PrometheusClient) -> None:
    def value(expr: str) -> float:
        [sample] = prometheus.query(expr)
        return float(sample["value"][1])

    assert value("sum(patroni_primary)") == 1
    assert value("sum(pg_up)") == 3
    assert value('sum(haproxy_backend_active_servers{proxy="rw"})') == 1
    assert value("min(etcd_server_has_leader)") == 1
    assert value("sum(pgbouncer_up)") == 1


def test_the_rules_are_loaded_and_a_lab_at_rest_fires_nothing(
    stack: Stack, prometheus: PrometheusClient
) -> None:
    groups = prometheus.get("/api/v1/rules", {"type": "alert"})["data"]["groups"]
    assert sorted(r["name"] for g in groups for r in g["rules"]) == sorted(ALERT_NAMES)
    alertmanager = AlertmanagerClient(stack.lab.url("alertmanager"))
    # what bring-up tripped on its way (an exporter up before its PostgreSQL) resolves
    quiet = poll(
        lambda: [a for a in alertmanager.firing() if a.name not in HOST_STATE],
        lambda firing: not firing,
        timeout=45,
        interval=1,
    )
    assert quiet.value == []


def test_the_alert_log_records_a_firing_and_its_resolution(stack: Stack) -> None:
    """A probe alert posted to Alertmanager reaches the webhook receiver, then its resolution:
    the path every lab alert takes to the chaos report."""
    alertmanager = stack.lab.url("alertmanager", "/api/v2/alerts")
    log = AlertLogClient(stack.lab.url(ALERT_LOG), timeout=5)
    since = time.time() - 1
    labels = {"alertname": "GardenlabLogProbe", "instance": f"probe-{int(since)}"}

    def post(ends_at: datetime) -> None:
        at = ends_at.isoformat()
        response = httpx.post(alertmanager, json=[{"labels": labels, "endsAt": at}], timeout=5)
        response.raise_for_status()

    def probes() -> list[str]:
        return [n.status for n in log.notifications(since) if n.labels == labels]

    post(datetime.now(UTC) + timedelta(minutes=5))
    assert "firing" in poll(probes, lambda s: "firing" in s, timeout=20, interval=0.5).value
    post(datetime.now(UTC))
    assert "resolved" in poll(probes, lambda s: "resolved" in s, timeout=30, interval=0.5).value


def test_the_dashboard_draws_every_panel_from_the_running_lab(
    stack: Stack, prometheus: PrometheusClient, tmp_path: Path
) -> None:
    end = time.time()
    window = Window(end - 120, end, end - 120)
    leader = next(p for p in PANELS if p.name == "leader")
    lines = fetch_lines(prometheus, leader, window)
    assert sorted(line.label for line in lines) == list(NODES)
    assert sum(line.points[-1][1] for line in lines) == 1  # one primary now
    written = draw(prometheus, window, tmp_path)
    assert len(written) == len(PANELS) + 1 and all(p.stat().st_size > 1000 for p in written)
    empty = [p.name for p in PANELS if not fetch_lines(prometheus, p, window)]
    assert empty == []  # every query reads series the exporters really export
