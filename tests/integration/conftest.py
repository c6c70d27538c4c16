"""Helpers for tests on the real stack; its fixtures live in tests/realstack.py."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from harness.lab.project import NODES
from harness.stack.lifecycle import Stack, service_of


def node_addresses(stack: Stack) -> dict[str, str]:
    """Container IP address per database node, to tell which node answered a query."""
    return {
        service_of(c): network.ip_address
        for c in stack.containers()
        if service_of(c) in NODES
        for network in (c.network_settings.networks or {}).values()
        if network.ip_address
    }


def answering_address(dsn: str) -> str:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select host(inet_server_addr())").fetchone()
    assert row is not None
    return str(row[0])


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """test_stack.py ends by taking the shared stack down, so it runs after every other test."""
    last = Path(__file__).parent / "test_stack.py"
    items.sort(key=lambda item: item.path == last)
