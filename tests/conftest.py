from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from tests.realstack import stack, stack_ready, test_env

__all__ = ["stack", "stack_ready", "test_env"]  # the real stack's session fixtures, for every suite
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture
def cluster_json() -> dict[str, Any]:
    """/cluster as recorded from the running lab: pg3 leader, pg1 sync standby, pg2 replica."""
    data: dict[str, Any] = json.loads((FIXTURES / "cluster_healthy.json").read_text())
    return data


@pytest.fixture
def stats_csv() -> str:
    return (FIXTURES / "haproxy_stats.csv").read_text()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--runs", type=int, default=1, help="Repeat each chaos scenario this many times."
    )
    parser.addoption(
        "--reuse-stack",
        action="store_true",
        help="Keep the test project's stack up at the end and use it again when healthy "
        "(for iterating on one test; CI starts from nothing).",
    )
