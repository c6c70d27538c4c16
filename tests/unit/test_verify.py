"""verify reads every table of a node in one statement, and names the table that differs."""

from __future__ import annotations

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
