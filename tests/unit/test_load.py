"""The load run's plan, thresholds, windows and request-log reading, without Locust or a stack."""

from __future__ import annotations

import math
from pathlib import Path

import pytest

from harness.cli.params import Wait
from harness.core.errors import ConfigError
from harness.core.units import parse_duration
from harness.lab.project import Lab
from harness.load.locust import LoadLatency, LoadTarget, locust_command, locust_environment
from harness.load.plan import DEFAULT_LIMITS, LoadPlan
from harness.load.report import (
    ALL,
    EACH,
    Limit,
    RequestRecord,
    RequestTail,
    Window,
    breaches,
    error_span,
    merge_limits,
    parse_limit,
    percentile,
    read_request_logs,
    window_stats,
)
from loadtests.mix import MIX, REQUEST_NAMES


def record(
    at: float, name: str = "search_leads", ms: float = 5.0, ok: bool = True
) -> RequestRecord:
    return RequestRecord(at, name, "ro", ms, ok, "" if ok else "OperationalError")


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50
    assert percentile(values, 95) == 95
    assert percentile(values, 99) == 99
    assert percentile([7.0], 95) == 7
    assert math.isnan(percentile([], 95))


def test_window_stats_per_request_and_aggregate() -> None:
    records = [record(t / 10, ms=float(t)) for t in range(100)]
    records += [record(5.0, "create_lead", ok=False), record(20.0, "create_lead")]  # outside
    stats = {s.name: s for s in window_stats(records, Window("steady", 0, 10))}
    assert stats["search_leads"].count == 100
    assert stats["search_leads"].p95 == 94
    assert stats["search_leads"].rps == pytest.approx(10)
    assert stats["create_lead"].errors == 1
    assert math.isnan(stats["create_lead"].p50)  # failed requests carry no latency
    assert stats[ALL].count == 101
    assert stats[ALL].error_ratio == pytest.approx(1 / 101)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("p95=100", Limit(ALL, "p95", 100)),
        ("errors=0.001", Limit(ALL, "errors", 0.001)),
        ("search_leads:p99=50", Limit("search_leads", "p99", 50)),
        ("each:p95=100", Limit(EACH, "p95", 100)),
    ],
)
def test_parse_limit(text: str, expected: Limit) -> None:
    assert parse_limit(text, REQUEST_NAMES) == expected


@pytest.mark.parametrize(
    ("text", "says"),
    [
        ("p95<100", "is not .REQUEST:.METRIC=VALUE"),
        ("p90=100", "unknown metric"),
        ("nosuch:p95=10", "unknown request type"),
        ("errors=2", "between 0 and 1"),
        ("p95=0", "above 0 ms"),
    ],
)
def test_bad_limits_are_refused_with_the_reason(text: str, says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        parse_limit(text, REQUEST_NAMES)


def test_an_override_replaces_the_default_of_its_kind() -> None:
    merged = merge_limits(DEFAULT_LIMITS, [Limit(ALL, "p95", 25), Limit("dashboard", "p95", 50)])
    assert Limit(ALL, "p95", 25) in merged
    assert Limit(ALL, "p95", 100) not in merged
    assert Limit("dashboard", "p95", 50) in merged


def test_breaches_latency_at_the_limit_fails_errors_at_the_limit_pass() -> None:
    records = [record(i / 10, ms=100.0) for i in range(999)] + [record(99.9, ok=False)]
    stats = window_stats(records, Window("steady", 0, 100))
    found = breaches(stats, [Limit(ALL, "p95", 100), Limit(ALL, "errors", 0.001)])
    assert len(found) == 1 and "p95 100.0 ms" in found[0]
    assert breaches(stats, [Limit(ALL, "p95", 100.1)]) == []
    assert "errors" in breaches(stats, [Limit(ALL, "errors", 0.0005)])[0]


def test_defaults_judge_each_request_type_as_well_as_the_aggregate() -> None:
    # The first run: an aggregate of ~58 ms hides a dashboard p95 of ~150 ms.
    records = [record(i / 100, "search_leads", ms=20.0) for i in range(960)]
    records += [record(i / 4, "dashboard", ms=150.0) for i in range(40)]
    stats = window_stats(records, Window("steady", 0, 10))
    assert {s.name: s for s in stats}[ALL].p95 < 100
    assert breaches(stats, DEFAULT_LIMITS) == [
        "dashboard: p95 150.0 ms (limit 100 ms, each request type)"
    ]


def test_a_request_types_own_limit_takes_the_place_of_each() -> None:
    records = [record(i / 100, "search_leads", ms=20.0) for i in range(960)]
    records += [record(i / 4, "dashboard", ms=150.0) for i in range(40)]
    stats = window_stats(records, Window("steady", 0, 10))
    limits = merge_limits(DEFAULT_LIMITS, [Limit("dashboard", "p95", 200)])
    assert breaches(stats, limits) == []
    stricter = merge_limits(DEFAULT_LIMITS, [Limit(EACH, "p95", 15)])
    assert sorted(breaches(stats, stricter)) == [
        "dashboard: p95 150.0 ms (limit 15 ms, each request type)",
        "search_leads: p95 20.0 ms (limit 15 ms, each request type)",
    ]


def test_each_never_judges_the_aggregate_or_an_empty_type() -> None:
    stats = window_stats([record(1.0, ms=500.0)], Window("steady", 0, 10))
    empty = [s for s in window_stats([record(20.0, "dashboard")], Window("steady", 0, 10))]
    found = breaches([*stats, *empty], [Limit(EACH, "p95", 100)])
    assert found == ["search_leads: p95 500.0 ms (limit 100 ms, each request type)"]


def test_error_span_after_a_fault() -> None:
    records = [record(1, ok=False), record(12, ok=False), record(15), record(30, ok=False)]
    span = error_span(records, since=10)
    assert (span.errors, span.first_after, span.last_after) == (2, 2, 20)
    assert span.seconds == 18
    assert error_span([record(11)], since=10).errors == 0


def test_read_request_logs_merges_processes_and_skips_cut_rows(tmp_path: Path) -> None:
    header = "timestamp,request_type,name,response_time_ms,response_length,status_code,exception\n"
    (tmp_path / "requests-1.csv").write_text(header + "2.0,rw,create_lead,4.5,1,0,\n")
    (tmp_path / "requests-2.csv").write_text(
        header + "1.0,ro,dashboard,3.0,4,0,\n3.0,ro,dashboard,9.0,0,0,PoolTimeout(...)\n4.0,ro"
    )
    records = read_request_logs(tmp_path)
    assert [(r.at, r.name, r.ok) for r in records] == [
        (1.0, "dashboard", True),
        (2.0, "create_lead", True),
        (3.0, "dashboard", False),
    ]


@pytest.mark.parametrize(
    ("kwargs", "says"),
    [
        ({"users": 0}, "--users"),
        ({"duration": 5}, "--duration"),
        ({"users": 100, "spawn_rate": 1, "duration": 60}, "leaves no steady state"),
        ({"via": "direct"}, "--via"),
        ({"wait": (2.0, 1.0)}, "--wait"),
        ({"processes": 0}, "--processes"),
    ],
)
def test_bad_plans_are_refused_before_any_load(kwargs: dict[str, object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        LoadPlan(**kwargs)  # type: ignore[arg-type]


def test_durations_and_waits() -> None:
    assert parse_duration("90") == 90
    assert parse_duration("3m") == 180
    assert parse_duration("1h") == 3600
    assert Wait().parse("0.2,1.0") == (0.2, 1.0)
    with pytest.raises(ConfigError):
        parse_duration("soon")
    with pytest.raises(ConfigError):
        Wait().parse("1")


def test_locust_command_is_headless_bounded_and_keeps_secrets_out(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, settings={"POSTGRES_PASSWORD": "secret-pw", "CRM_APP_PASSWORD": "x"})
    env = locust_environment(LoadTarget.of_lab(lab, "haproxy"), LoadPlan(), tmp_path)
    assert "secret-pw" in env["GARDENLAB_LOAD_SAMPLE_DSN"]
    command = locust_command(LoadPlan(processes=2), tmp_path, 180)
    assert "--headless" in command
    assert command[command.index("--run-time") + 1] == "180s"
    assert command[command.index("--processes") + 1] == "2"
    assert not any("secret-pw" in part for part in command)


def test_the_mix_writes_to_the_primary_and_reads_stale_tolerant_from_replicas() -> None:
    primary = {r.name for r in MIX if r.primary}
    assert primary == {"create_lead", "book_appointment", "add_messages"}
    assert len(set(REQUEST_NAMES)) == len(MIX)


class FinishedLocust:
    """What analyse reads of a Locust run that ended well."""

    def __init__(self, directory: Path) -> None:
        self.returncode = 0
        self.cpu_seconds = 1.0
        self.log_path = directory / "locust.log"
        self.log_path.write_text("")


def test_a_load_with_an_import_compares_the_windows_before_during_and_after(
    tmp_path: Path,
) -> None:
    from harness.load.run import analyse, import_lines

    header = "timestamp,request_type,name,response_time_ms,response_length,status_code,exception\n"
    rows = [
        f"{t / 10:.1f},ro,dashboard,{5.0 if t < 200 or t >= 400 else 50.0},1,0,\n"
        for t in range(0, 500)
    ]
    (tmp_path / "requests-1.csv").write_text(header + "".join(rows))
    plan = LoadPlan(users=10, spawn_rate=10, duration=60, limits=DEFAULT_LIMITS)
    imported = {
        "rows": 100_000,
        "id": 3,
        "state": "done",
        "imported": 99_500,
        "rejected": 500,
        "seconds": 20.0,
        "rows_per_second": 5000.0,
        "failures": ["import 3: 1 lines in leads more than once (first: [7])"],
    }
    result = analyse(
        plan,
        tmp_path,
        FinishedLocust(tmp_path),  # type: ignore[arg-type]
        {"import": 20.0, "imported": 40.0},
        imported=imported,
    )
    assert [w.name for w in result.windows] == ["ramp", "steady", "import", "after"]
    assert result.gate == "steady"
    assert result.failures == ["import: import 3: 1 lines in leads more than once (first: [7])"]
    lines = import_lines(result)
    assert "100,000 rows in 20.0 s under load (5,000 rows/s)" in lines[0]
    assert lines[1] == (
        "p95 of all requests: 5.0 ms without the import, 50.0 ms while it ran (+45.0 ms), "
        "5.0 ms after it"
    )
    assert (tmp_path / "timeline.png").exists()


HEADER = "timestamp,request_type,name,response_time_ms,response_length,status_code,exception\r\n"


def test_the_tail_reads_only_whole_rows_and_each_once(tmp_path: Path) -> None:
    log = tmp_path / "requests-1.csv"
    log.write_text(HEADER + "1.0,ro,search_leads,4.5,1,0,\r\n2.0,rw,create_le")
    tail = RequestTail(tmp_path)
    assert [(r.at, r.ms) for r in tail.new()] == [(1.0, 4.5)]
    with log.open("a") as f:  # Locust flushes the rest of the row, and another process starts
        f.write('ad,700.0,1,0,"OperationalError: server closed\nthe connection"\r\n')
    (tmp_path / "requests-2.csv").write_text(HEADER + "3.0,ro,search_leads,20.0,1,0,\r\n")
    fresh = tail.new()
    assert [(r.at, r.name, r.ms, r.ok) for r in fresh] == [
        (2.0, "create_lead", 700.0, False),
        (3.0, "search_leads", 20.0, True),
    ]
    assert tail.new() == []


def test_the_loads_latency_reaches_node_exporters_textfile_and_ends_with_it(
    tmp_path: Path,
) -> None:
    logs, textfile = tmp_path / "run", tmp_path / "textfile"
    logs.mkdir()
    (logs / "requests-1.csv").write_text(
        HEADER + "1.0,ro,search_leads,4.5,1,0,\r\n2.0,rw,create_lead,700.0,1,0,\r\n"
    )
    latency = LoadLatency(logs, textfile)
    latency.publish()
    text = (textfile / "gardenlab_query_latency_load.prom").read_text()
    assert 'gardenlab_query_duration_seconds_bucket{source="load",le="0.005"} 1\n' in text
    assert 'gardenlab_query_duration_seconds_bucket{source="load",le="0.5"} 1\n' in text
    assert 'gardenlab_query_duration_seconds_count{source="load"} 2\n' in text
    latency.stop()
    assert list(textfile.iterdir()) == []
