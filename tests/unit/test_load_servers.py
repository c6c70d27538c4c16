"""What the servers did during a run, read through the runtime seam from fakes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.core.errors import CommandError
from harness.lab.project import Lab
from harness.load.servers import (
    RESET_SQL,
    STATEMENTS_SQL,
    ServerUse,
    ServerWatch,
    merge_statements,
    parse_cpu,
    parse_slow_plans,
    slowest_plans,
    summary_lines,
)
from harness.stack.lifecycle import Stack
from tests.fakes import FakeRuntime


def row(query: str, calls: int, total_ms: float, toplevel: bool = True) -> dict[str, object]:
    return {
        "query": query,
        "toplevel": toplevel,
        "calls": calls,
        "total_ms": total_ms,
        "rows": calls,
        "hit": 90 * calls,
        "read": 10 * calls,
    }


def test_a_statement_on_several_nodes_is_one_row_busiest_first() -> None:
    merged = merge_statements(
        {
            "pg2": [row("SELECT a", 10, 50.0), row("SELECT b", 1, 500.0)],
            "pg3": [row("SELECT a", 30, 150.0), row("SELECT a", 5, 1.0, toplevel=False)],
        }
    )
    assert [(s.query, s.toplevel, s.calls, s.nodes) for s in merged] == [
        ("SELECT b", True, 1, ("pg2",)),
        ("SELECT a", True, 40, ("pg2", "pg3")),
        ("SELECT a", False, 5, ("pg3",)),
    ]
    assert merged[1].total_ms == 200.0 and merged[1].mean_ms == 5.0
    assert merged[1].hit_ratio == pytest.approx(0.9)


@pytest.mark.parametrize(
    ("text", "seconds"),
    [
        ("usage_usec 2500000\nuser_usec 2000000\nsystem_usec 500000\n", 2.5),  # cgroup v2
        ("3000000000\n", 3.0),  # cgroup v1, ns
    ],
)
def test_cpu_counters_of_both_cgroup_versions(text: str, seconds: float) -> None:
    assert parse_cpu(text) == seconds


def test_the_watch_resets_statements_and_counts_cpu_between_its_readings(tmp_path: Path) -> None:
    used = {"pg1": 1.0, "pg2": 2.0, "haproxy": 0.5}
    sql: list[tuple[str, str]] = []

    def on_exec(service: str, command: list[str]) -> str:
        if command[0] == "sh":
            return f"{int(used[service] * 1e9)}\n"
        query = command[-1]
        sql.append((service, query))
        if query == STATEMENTS_SQL:
            return json.dumps([row("SELECT 1", 100, 20.0)])
        return ""

    runtime = FakeRuntime.with_services("pg1", "pg2", "haproxy", on_exec=on_exec)
    runtime.logs["gardenlab-pg2-1"] = NODE_LOG
    stack = Stack(Lab(root=tmp_path, settings={}), say=lambda _: None, runtime=runtime)
    watch = ServerWatch(stack)
    watch.start()
    assert sorted(sql) == [("pg1", RESET_SQL), ("pg2", RESET_SQL)]
    used.update(pg1=4.0, pg2=2.5, haproxy=0.75)
    use = watch.finish()
    assert use.cpu == {"pg1": 3.0, "pg2": 0.5, "haproxy": 0.25}
    assert [(s.calls, s.nodes) for s in use.statements] == [(200, ("pg1", "pg2"))]
    assert [(p.node, p.duration_ms) for p in use.plans] == [("pg2", 171.586), ("pg2", 120.0)]
    assert use.notes == []


def test_what_cannot_be_read_is_noted_not_failed(tmp_path: Path) -> None:
    def on_exec(service: str, command: list[str]) -> str:
        if command[0] == "sh":
            return "7000000000"
        raise CommandError(command, 1, "ERROR:  function pg_stat_statements_reset() does not exist")

    runtime = FakeRuntime.with_services("pg1", on_exec=on_exec)
    stack = Stack(Lab(root=tmp_path, settings={}), say=lambda _: None, runtime=runtime)
    watch = ServerWatch(stack)
    watch.start()
    use = watch.finish()
    assert use.statements == []
    assert any("`make migrate`" in note for note in use.notes)


def test_the_summary_lists_cpu_per_request_and_both_rankings() -> None:
    statements = merge_statements(
        {"pg1": [row("SELECT slow", 10, 900.0), row("SELECT  many\n  rows", 1000, 1000.0)]}
    )
    use = ServerUse(10.0, {"pg1": 8.0, "haproxy": 2.0}, statements)
    text = "\n".join(summary_lines(use, requests=1000))
    assert "10 CPU s in 10 s (1.00 cores), 10.0 CPU ms per request" in text
    assert "pg1 8.0 (0.80)  haproxy 2.0 (0.20)" in text
    by_total, by_mean = text.split("by mean time")
    assert by_total.index("SELECT many rows") < by_total.index("SELECT slow")
    assert by_mean.index("SELECT slow") < by_mean.index("SELECT many rows")


# A node's log as the container has it: Patroni's lines between PostgreSQL's.
NODE_LOG = """2026-12-03 06:17:43,100 INFO: no action. I am (pg2), a secondary
2026-12-03 06:17:44.076 UTC [208] LOG:  duration: 171.586 ms  plan:
\tQuery Text: SELECT * FROM leads WHERE agency_id = 2 ORDER BY created_at DESC LIMIT 20
\tLimit  (cost=730.59..730.59 rows=1 width=80) (actual rows=0 loops=1)
\t  Buffers: shared hit=539
2026-12-03 06:17:44.076 UTC [208] CONTEXT:  PL/pgSQL function app.search_leads(text,integer)
2026-12-03 06:17:45.001 UTC [209] LOG:  duration: 120.000 ms  plan:
\tQuery Text: SELECT * FROM app.search_leads($1)
\tQuery Parameters: $1 = 'x'
\tFunction Scan on search_leads  (cost=0.25..10.25 rows=1000 width=112) (actual rows=0 loops=1)
2026-12-03 06:17:45,151 WARNING: Exception happened during processing of request
"""


def test_auto_explains_entries_are_read_from_the_log_between_patronis_lines() -> None:
    plans = parse_slow_plans(NODE_LOG, "pg2")
    assert [(p.at, p.duration_ms) for p in plans] == [
        ("2026-12-03 06:17:44.076", 171.586),
        ("2026-12-03 06:17:45.001", 120.0),
    ]
    first, second = plans
    assert first.query.startswith("SELECT * FROM leads WHERE agency_id = 2")
    assert first.plan == (
        "Limit  (cost=730.59..730.59 rows=1 width=80) (actual rows=0 loops=1)",
        "  Buffers: shared hit=539",
    )
    assert second.plan == (
        "Function Scan on search_leads  (cost=0.25..10.25 rows=1000 width=112) "
        "(actual rows=0 loops=1)",
    )


def test_the_report_prints_the_slowest_plan_of_each_statement_once() -> None:
    plans = parse_slow_plans(NODE_LOG, "pg2") * 2
    ranked = slowest_plans(plans)
    assert [(p.duration_ms, times) for p, times in ranked] == [(171.586, 2), (120.0, 2)]
    use = ServerUse(10.0, {"pg2": 1.0}, [], plans=plans)
    text = "\n".join(summary_lines(use, requests=10))
    assert "slow statements (auto_explain, 4 logged)" in text
    assert "171.6 ms on pg2 at 2026-12-03 06:17:44.076 (logged 2x)" in text
    assert "    Limit  (cost=730.59" in text
