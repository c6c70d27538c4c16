"""One test per scenario of the catalog, on the real stack, against its invariants and budget.

`make chaos` runs them all (`RUNS=10` repeats each); `make test` runs the subset marked
chaos_ci. Every scenario heals itself, even when it fails or is interrupted. On failure the
evidence is kept under artifacts/chaos/: the result and timeline, the compose logs, and
Patroni's /cluster and /history.
"""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest

from harness.chaos.catalog import CATALOG
from harness.chaos.report import summary, write_report
from harness.chaos.runner import run
from harness.clients.patroni import verifying
from harness.stack.lifecycle import Stack
from tests.realstack import seed_small


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "scenario_name" in metafunc.fixturenames:
        runs = metafunc.config.getoption("--runs")
        params = [
            pytest.param(
                name,
                run_index,
                id=f"{name}-{run_index}" if runs > 1 else name,
                marks=[pytest.mark.chaos_ci] if scenario.ci else [],
            )
            for name, scenario in CATALOG.items()
            for run_index in range(1, runs + 1)
        ]
        metafunc.parametrize(("scenario_name", "run_index"), params)


def save_evidence(stack: Stack, directory: Path) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "compose.log").write_text(stack.log_tail(lines=400))
    for path in ("cluster", "history"):
        try:
            url, ca = stack.lab.rest_url("pg1", f"/{path}"), verifying(stack.lab.rest_ca)
            answer = httpx.get(url, timeout=3, verify=ca).json()
        except (httpx.HTTPError, ValueError) as exc:
            answer = {"unavailable": repr(exc)}
        (directory / f"{path}.json").write_text(json.dumps(answer, indent=1))


@pytest.mark.chaos
@pytest.mark.timeout(600)
def test_scenario(stack: Stack, scenario_name: str, run_index: int) -> None:
    scenario = CATALOG[scenario_name]
    if scenario.imports:
        seed_small(stack, reset=False)  # the import's agency
    result = run(stack, scenario, say=print)
    directory = stack.lab.root / "artifacts" / "chaos" / f"{scenario_name}-{run_index}"
    write_report(result, directory)
    print(summary(result))
    if not result.passed:
        save_evidence(stack, directory)
        pytest.fail(f"{summary(result)}\n  evidence: {directory}", pytrace=False)
