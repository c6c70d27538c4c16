"""An import through a scenario: when the fault may come, and whether it met the import."""

from __future__ import annotations

from typing import Any

from harness.chaos.catalog import CATALOG
from harness.chaos.imports import ImportPlan, reach_failures, reached


def summary(state: str, seen: int) -> dict[str, Any]:
    return {"state": state, "rows_seen": seen}


def test_the_fault_waits_for_the_plan_s_phase() -> None:
    assert not reached(None, "staging")
    assert not reached(summary("staging", 0), "staging")
    assert reached(summary("staging", 5000), "staging")
    assert not reached(summary("staging", 195_000), "merging")
    assert reached(summary("merging", 200_000), "merging")
    assert reached(summary("done", 200_000), "merging")  # too late: reach_failures says so


def test_a_fault_that_missed_the_import_fails_the_scenario() -> None:
    cut = ImportPlan(50_000, fault_in="merging", cut=True)
    assert reach_failures(7, cut, {"fault": "merging", "heal": "merging"}) == []
    assert "done before the fault" in reach_failures(7, cut, {"fault": "done", "heal": "done"})[0]
    missed = reach_failures(7, cut, {"fault": "merging", "heal": "done"})
    assert "missed the service's database link" in missed[0]
    # a fault that does not cut the service (a restart of it, a failover) may let it finish
    assert reach_failures(7, ImportPlan(50_000), {"fault": "staging", "heal": "done"}) == []
    assert reach_failures(7, cut, {"fault": "unknown", "heal": "unknown"}) == []


def test_the_link_scenarios_cut_the_import_service_alone() -> None:
    links = {n: s for n, s in CATALOG.items() if n.startswith("import-link-")}
    assert set(links) == {"import-link-cut", "import-link-reset", "import-link-hang"}
    for scenario in links.values():
        assert scenario.imports is not None and scenario.imports.cut
        assert scenario.expect.failover is False and scenario.expect.max_write_gap == 1
    assert [n for n, s in links.items() if s.ci] == ["import-link-cut"]
