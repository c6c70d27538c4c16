"""The gate's cluster checks on recorded and doctored Patroni views: each must be able to fail."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx
import pytest

from harness.clients.patroni import Cluster, PatroniClient
from harness.config.inventory import load_inventory
from harness.promotion.gate import GateReport, cluster_checks, read_only_checks
from tests.fakes import cluster_json

EXAMPLE = load_inventory(Path(__file__).parents[2] / "docs" / "inventory.example.yml")


def checked(data: dict[str, Any], max_lag: int = 1024) -> GateReport:
    report = GateReport("t.yml")
    cluster_checks(report, EXAMPLE, Cluster.from_json(data), max_lag)
    return report


def verdicts(report: GateReport) -> dict[str, bool | None]:
    return {c.name: c.passed for c in report.checks}


def test_a_healthy_cluster_of_the_inventory_passes_every_check() -> None:
    report = checked(cluster_json("db1", "db2", "db3"))
    assert verdicts(report) == {
        "a Patroni cluster of this inventory": True,
        "one leader": True,
        "replicas streaming, lag <= 1024 bytes": True,
        "a synchronous standby": True,
    }


def test_members_that_are_not_the_inventory_s_stop_the_gate_at_once() -> None:
    report = checked(cluster_json("pg1", "pg2", "pg3"))
    assert verdicts(report) == {"a Patroni cluster of this inventory": False}
    assert "['pg1', 'pg2', 'pg3']" in report.checks[0].detail


@pytest.mark.parametrize(
    ("doctor", "failing"),
    [
        (lambda m: m[1].update(lag=4096), "replicas streaming, lag <= 1024 bytes"),
        (lambda m: m[2].update(state="starting"), "replicas streaming, lag <= 1024 bytes"),
        (lambda m: m[1].update(role="replica"), "a synchronous standby"),
        (lambda m: m[2].update(role="leader", state="running"), "one leader"),
    ],
)
def test_each_unhealthy_shape_fails_its_own_check(doctor: Any, failing: str) -> None:
    data = cluster_json("db1", "db2", "db3")
    doctor(data["members"])
    report = checked(data)
    assert [c.name for c in report.checks if c.passed is False] == [failing]
    assert not report.passed


def test_an_unreachable_target_is_no_go_and_nothing_else_is_tried() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused", request=request)

    report = GateReport("t.yml")
    with PatroniClient(["http://10.0.1.11:8008"], transport=httpx.MockTransport(refuse)) as p:
        healthy = read_only_checks(report, EXAMPLE, {}, p, max_lag=1024, max_backup_age=None)
    assert not healthy and not report.passed
    assert [c.name for c in report.checks] == ["a Patroni cluster of this inventory"]
