"""verify reads every table of a node in one statement, and names the table that differs."""

from __future__ import annotations

import pytest

from harness.core.errors import CommandError
from harness.data.verify import verify


def test_one_statement_per_node_and_the_differing_table_named() -> None:
    calls: list[tuple[str, str]] = []

    def run_sql(node: str, query: str) -> str:
        calls.append((node, query))
        if "pg_current_wal_lsn" in query:
            return "0/10"
        if "pg_last_wal_replay_lsn" in query:
            return "t"
        leads = "leads|3|99" if node != "pg3" else "leads|2|98"
        return f"agencies|1|7\n{leads}"

    checks = {c.table: c for c in verify(run_sql, "pg1", tables=("agencies", "leads"))}
    assert checks["agencies"].passed and not checks["leads"].passed
    assert checks["leads"].per_node == {"pg1": (3, 99), "pg2": (3, 99), "pg3": (2, 98)}
    reads = [node for node, query in calls if "union all" in query]
    assert reads == ["pg1", "pg2", "pg3"]


def test_a_replica_cancelling_the_reader_for_its_replay_is_asked_again() -> None:
    conflict = "FATAL:  canceling statement due to conflict with recovery"
    cancelled: set[tuple[str, str]] = set()

    def run_sql(node: str, query: str) -> str:
        kind = "replay" if "replay" in query else "read"
        first = (node, kind) not in cancelled and "pg_current_wal_lsn" not in query
        if node == "pg3" and first:
            cancelled.add((node, kind))
            raise CommandError(["psql"], 2, conflict)
        if "pg_current_wal_lsn" in query:
            return "0/10"
        return "t" if kind == "replay" else "agencies|1|7"

    checks = verify(run_sql, "pg1", tables=("agencies",))
    assert checks[0].passed and cancelled == {("pg3", "replay"), ("pg3", "read")}


def test_any_other_failure_of_a_node_is_not_hidden() -> None:
    def run_sql(node: str, query: str) -> str:
        if node == "pg2":
            raise CommandError(["psql"], 2, "could not connect to server")
        return "0/10" if "current" in query else "t"

    with pytest.raises(CommandError, match="could not connect"):
        verify(run_sql, "pg1", tables=("agencies",))
