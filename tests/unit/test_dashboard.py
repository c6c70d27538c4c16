"""`harness dashboard` against a fake Prometheus (httpx's MockTransport): the panels' queries
go out with the window, alerts become stretches, and bad input or a Prometheus that does not
answer stops with a message before any file is written."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from click.testing import CliRunner

from harness import cli
from harness.chaos.report import record_window
from harness.chaos.workload import Attempt, Record
from harness.cli.app import App
from harness.cli.dashboard import report_panels
from harness.clients.monitoring import PrometheusClient
from harness.core.errors import HarnessError
from harness.lab.project import Lab
from harness.stack.dashboard import ALERTS_QUERY, PANELS, Window, draw, fetch_alerts, step_for
from tests.fakes import free_ports

START = 1_000_000.0


def fake_prometheus(asked: list[dict[str, str]]) -> PrometheusClient:
    def answer(request: httpx.Request) -> httpx.Response:
        assert request.url.path == "/api/v1/query_range"
        params = dict(request.url.params)
        asked.append(params)
        if params["query"] == ALERTS_QUERY:
            # fired 10-20 s, a gap, then 60-65 s
            ts = [START + t for t in (10, 15, 20, 60, 65)]
            labels = {"alertname": "InstanceDown", "instance": "pg1", "alertstate": "firing"}
            series = [{"metric": labels, "values": [[t, "1"] for t in ts]}]
        elif params["query"] == "patroni_primary":
            series = [
                {"metric": {"instance": n}, "values": [[START, v], [START + 5, v]]}
                for n, v in (("pg2", "0"), ("pg1", "1"))
            ]
        else:
            series = []
        return httpx.Response(200, json={"status": "success", "data": {"result": series}})

    return PrometheusClient("http://prometheus", transport=httpx.MockTransport(answer))


def test_every_panel_is_drawn_from_the_window_asked_for(tmp_path: Path) -> None:
    asked: list[dict[str, str]] = []
    window = Window(START, START + 900, START)
    written = draw(fake_prometheus(asked), window, tmp_path / "d")
    assert [p.name for p in written] == ["alerts.png", *(f"{p.name}.png" for p in PANELS)]
    assert all(p.stat().st_size > 1000 for p in written)
    assert {(a["start"], a["end"], a["step"]) for a in asked} == {
        ("1000000.000", "1000900.000", "5")
    }
    assert len(asked) == 1 + sum(len(p.queries) for p in PANELS)
    assert "leader.png" in (tmp_path / "d" / "index.html").read_text()


def test_alerts_become_their_firing_stretches() -> None:
    bars = fetch_alerts(fake_prometheus([]), Window(START, START + 100, START))
    assert [(b.label, b.start, b.end) for b in bars] == [
        ("InstanceDown (pg1)", 10, 25),
        ("InstanceDown (pg1)", 60, 70),
    ]


def test_the_step_keeps_a_long_window_within_a_few_hundred_points() -> None:
    assert step_for(0, 600) == 5
    assert step_for(0, 2 * 24 * 3600) == 288


def test_a_query_prometheus_refuses_is_named() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, json={"status": "error", "error": "parse error at char 3"})

    client = PrometheusClient("http://p", transport=httpx.MockTransport(refuse))
    with pytest.raises(HarnessError, match=r"refused .*parse error at char 3"):
        client.query_range("up(", 0, 1, 5)


def test_an_unreachable_prometheus_stops_before_anything_is_written(tmp_path: Path) -> None:
    lab = Lab(root=tmp_path, settings={"GARDENLAB_PROMETHEUS_PORT": str(free_ports(1)[0])})
    out = tmp_path / "out"
    result = CliRunner().invoke(
        cli.cli, ["dashboard", "--out", str(out)], obj=App(lab_factory=lambda: lab)
    )
    assert isinstance(result.exception, HarnessError)
    assert "Prometheus does not answer" in result.exception.message
    assert "make dev-up" in result.exception.hint
    assert not out.exists()


@pytest.mark.parametrize(
    ("since", "says"),
    [("soon", "duration 'soon' is not a number"), ("0", "more than 0"), ("49h", "at most 48h")],
)
def test_a_since_that_is_not_a_window_is_a_usage_error(since: str, says: str) -> None:
    result = CliRunner().invoke(cli.cli, ["dashboard", "--since", since])
    assert result.exit_code == 2
    assert says in result.output


def test_help_names_the_panels() -> None:
    result = CliRunner().invoke(cli.cli, ["dashboard", "--help"])
    assert result.exit_code == 0 and "replication lag" in result.output


def test_a_chaos_report_draws_the_panels_of_its_own_window(tmp_path: Path) -> None:
    asked: list[dict[str, str]] = []
    attempt = Attempt(1, 1, 0.0, 95.0, "ack", "10.0.0.2", "")
    record = Record(
        attempts=[attempt], marks={"fault": 30.0, "heal": 60.0, "ready": 70.0}, epoch=START
    )
    window, marks = record_window(record)
    assert marks == [30.0, 60.0]
    written = draw(fake_prometheus(asked), window, tmp_path / "panels", marks=marks)
    assert written[0] == tmp_path / "panels" / "alerts.png"
    assert {(a["start"], a["end"]) for a in asked} == {("1000000.000", "1000100.000")}
    assert record_window(record, marks=None)[1] == [30.0, 60.0, 70.0]  # a drill's every step


def test_a_load_report_draws_the_panels_of_its_own_window() -> None:
    from harness.load.plan import LoadPlan
    from harness.load.report import Window as LoadWindow
    from harness.load.run import LoadResult, panel_window

    windows = [
        LoadWindow("ramp", START, START + 10),
        LoadWindow("steady", START + 10, START + 40),
        LoadWindow("fault", START + 40, START + 55),
        LoadWindow("recovery", START + 55, START + 90),
    ]
    result = LoadResult(LoadPlan(), Path("x"), windows, {}, "steady", 90.0, 1.0, 0, [])
    window, marks = panel_window(result)
    assert (window.start, window.end, window.origin) == (START, START + 90, START)
    assert marks == [10.0, 40.0, 55.0]  # on the load timeline's clock


def test_a_report_without_prometheus_says_so_and_keeps_its_verdict(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lab = Lab(root=tmp_path, settings={"GARDENLAB_PROMETHEUS_PORT": str(free_ports(1)[0])})
    report_panels(App(lab_factory=lambda: lab), tmp_path, Window(START, START + 60, START), [])
    assert "panels not drawn: Prometheus does not answer" in capsys.readouterr().err
    assert not (tmp_path / "panels").exists()
