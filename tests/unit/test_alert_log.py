"""The webhook receiver (alertlog/) and what the chaos watch makes of its log: each alert's
notified fire and resolve times, alerts only the log saw, and notifications that never came."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
import yaml

from alertlog.log import Log
from alertlog.server import make_server
from harness.chaos.alerts import AlertExpectation, AlertWatch, Seen, alert_failures
from harness.chaos.report import alert_lines
from harness.clients.monitoring import AlertLogClient, FiringAlert, Notification
from harness.config.monitoring import LAB_WEBHOOK, alertmanager_config
from harness.config.render import render_files
from harness.core.errors import HarnessError
from harness.lab.presets import PRESETS


def payload(status: str, *alerts: tuple[str, str]) -> dict[str, object]:
    """Alertmanager's webhook body (version 4), one alert per (name, status)."""
    return {
        "version": "4",
        "status": status,
        "alerts": [
            {"status": s, "labels": {"alertname": n, "instance": "pg1"}, "startsAt": "t"}
            for n, s in alerts
        ],
    }


@pytest.fixture
def receiver() -> Iterator[tuple[str, Log]]:
    now = [100.0]
    log = Log(clock=lambda: now[0])
    server = make_server("127.0.0.1", 0, log)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", log
    finally:
        server.shutdown()
        server.server_close()


def test_the_receiver_keeps_every_notification_and_refuses_what_is_not_one(
    receiver: tuple[str, Log],
) -> None:
    url, _ = receiver
    body = payload("firing", ("InstanceDown", "firing"), ("PostgresDown", "resolved"))
    assert httpx.post(url + "/", json=body).json() == {"recorded": 2}
    assert httpx.post(url + "/", content=b"{not json").status_code == 400
    assert httpx.post(url + "/", json={"alerts": "no"}).status_code == 400
    assert httpx.get(url + "/notifications", params={"since": "soon"}).status_code == 400
    [down, pg] = AlertLogClient(url).notifications(since=99)
    assert (down.name, down.status, down.where, down.received) == (
        "InstanceDown",
        "firing",
        "instance=pg1",
        100.0,
    )
    assert (pg.name, pg.status) == ("PostgresDown", "resolved")
    assert AlertLogClient(url).notifications(since=101) == []
    assert httpx.get(url + "/-/ready").status_code == 200


def test_the_log_file_gets_one_json_line_per_alert(tmp_path: Path) -> None:
    path = tmp_path / "notifications.jsonl"
    Log(path, clock=lambda: 5.0).record(payload("firing", ("A", "firing"), ("B", "firing")))
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(e["labels"]["alertname"], e["received"]) for e in lines] == [("A", 5.0), ("B", 5.0)]


def test_an_unreachable_log_names_itself() -> None:
    def refuse(request: httpx.Request) -> httpx.Response:
        raise httpx.ConnectError("refused")

    client = AlertLogClient("http://127.0.0.1:9", transport=httpx.MockTransport(refuse))
    with pytest.raises(HarnessError, match="The alert log does not answer"):
        client.notifications()


def test_the_lab_routes_every_notification_to_the_log_resolved_ones_too() -> None:
    [receiver] = yaml.safe_load(alertmanager_config(webhook=LAB_WEBHOOK))["receivers"]
    assert receiver["webhook_configs"] == [{"url": "http://alert-log:9095/", "send_resolved": True}]
    lab = yaml.safe_load(render_files(PRESETS["fast"])["alertmanager.yml"])
    assert lab["receivers"] == [receiver]


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def note(at: float, status: str, name: str, **labels: str) -> Notification:
    return Notification(1000.0 + at, status, name, {"alertname": name, **labels})


def test_the_watch_takes_notified_times_from_the_log_and_alerts_only_it_saw() -> None:
    down = FiringAlert("InstanceDown", {"alertname": "InstanceDown", "instance": "pg1"}, "t", "")
    answers: list[list[FiringAlert]] = [[], [], [down], [down], [], []]
    clock = Clock()
    notes = [
        note(3.5, "firing", "InstanceDown", instance="pg1"),
        note(5.5, "firing", "PatroniTwoPrimaries", scope="s"),  # between two polls
        note(6.0, "resolved", "PatroniTwoPrimaries", scope="s"),
        note(9.0, "resolved", "InstanceDown", instance="pg1"),
    ]
    watch = AlertWatch(
        lambda: answers.pop(0) if answers else [],
        lambda since: [n for n in notes if n.received >= since],
        clock=clock,
        wall=lambda: 1000.0 + clock.t,
    )
    watch.before = set()
    for t in range(1, 7):
        clock.t = float(t)
        if t == 1:
            watch.mark("fault")
        if t == 4:
            watch.mark("heal")
        watch.poll_once()
    watch.read_log()
    down_seen, twice = watch.alerts()
    assert (down_seen.first, down_seen.resolved) == (3.0, 5.0)
    assert (down_seen.notified, down_seen.notified_resolved) == (3.5, 9.0)
    assert (twice.first, twice.notified, twice.notified_resolved) == (None, 5.5, 6.0)
    expect = (AlertExpectation("InstanceDown", fire_within=5, resolve_within=6),)
    assert alert_failures(watch, expect, ("PatroniTwoPrimaries",)) == [
        "alert PatroniTwoPrimaries (scope=s) fired, which it must never do here"
    ]


def test_an_alert_never_notified_or_its_resolution_never_notified_fails() -> None:
    down = FiringAlert("InstanceDown", {"alertname": "InstanceDown", "instance": "pg1"}, "t", "")
    answers: list[list[FiringAlert]] = [[down], []]
    clock = Clock()
    watch = AlertWatch(lambda: answers.pop(0), lambda since: [], clock=clock, wall=clock)
    watch.marks = {"fault": 0.0, "heal": 1.0}
    for t in (1, 2):
        clock.t = float(t)
        watch.poll_once()
    watch.read_log()
    expect = (AlertExpectation("InstanceDown", fire_within=5, resolve_within=5),)
    assert alert_failures(watch, expect, ()) == [
        "alert InstanceDown (instance=pg1) fired but was never notified"
    ]
    watch.seen[("InstanceDown", "instance=pg1")].notified = 1.5
    assert alert_failures(watch, expect, ()) == [
        "alert InstanceDown (instance=pg1) resolved but its resolution was never notified"
    ]


def test_a_log_that_never_answers_is_a_failure() -> None:
    def broken(since: float) -> list[Notification]:
        raise HarnessError("The alert log does not answer", "")

    watch = AlertWatch(lambda: [], broken, clock=lambda: 0.0)
    watch.poll_once()
    watch.read_log()
    watch.marks = {"fault": 0.0, "heal": 1.0}
    assert alert_failures(watch, (), ()) == ["the alert log never answered (1 tries)"]


def test_the_report_gives_each_alert_its_times_from_both_sources() -> None:
    alerts = [
        Seen("InstanceDown", "instance=pg1", 14.0, 33.5, notified=14.2, notified_resolved=37.0),
        Seen("PatroniTwoPrimaries", "scope=s", None, None, notified=20.0, notified_resolved=21.0),
    ]
    assert alert_lines(alerts, {"fault": 0.0, "heal": 30.0}) == [
        "  alerts (fired: from the fault; resolved: from the heal):",
        "    InstanceDown (instance=pg1): Alertmanager fired +14.0 s, resolved +3.5 s;"
        " webhook fired +14.2 s, resolved +7.0 s",
        "    PatroniTwoPrimaries (scope=s): Alertmanager not seen;"
        " webhook fired +20.0 s, resolved -9.0 s",
    ]
    assert alert_lines([], {}) == []
