"""Helpers for tests on the real stack; its fixtures live in tests/realstack.py."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import psycopg
import pytest

from harness.core.polling import holds, poll
from harness.lab.topology import NODES
from harness.stack.lifecycle import Stack


def node_addresses(stack: Stack) -> dict[str, str]:
    """Container IP address per database node, to tell which node answered a query."""
    return {c.service: c.addresses[0] for c in stack.containers() if c.service in NODES}


def eventually(condition: Callable[[], bool], seconds: float, what: str) -> None:
    """Assert that the condition comes true within the time: the harness's own poll."""
    if not poll(condition, holds, timeout=seconds).held:
        raise AssertionError(f"not within {seconds:.0f} s: {what}")


def new_leader(stack: Stack, old: str, seconds: float = 60) -> str:
    """The leader once it is no longer `old`."""
    seen: list[str] = []

    def changed() -> bool:
        with stack.patroni() as patroni:
            leader = patroni.cluster().leader
        seen[:] = [leader.name] if leader and leader.name != old else []
        return bool(seen)

    eventually(changed, seconds, f"a new leader instead of {old}")
    return seen[0]


def answering_address(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select host(inet_server_addr())").fetchone()
    assert row is not None
    return str(row[0])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_stack.py ends by taking the shared stack down, so it runs after every other test."""
    last = Path(__file__).parent / "test_stack.py"
    items.sort(key=lambda item: item.path == last)
