"""The chaos runner's view of monitoring: alerts told apart by labels, timed on one clock,
judged against a scenario's budgets; and the clients that read Prometheus and Alertmanager."""

from __future__ import annotations

import httpx

from harness.chaos.alerts import AlertExpectation, AlertWatch, alert_failures
from harness.clients.monitoring import AlertmanagerClient, FiringAlert, PrometheusClient


class Script:
    """Alertmanager's answers, one list per poll; a clock that moves a second per poll."""

    def __init__(self, *answers: list[FiringAlert]) -> None:
        self.answers = list(answers)
        self.t = 0.0

    def firing(self) -> list[FiringAlert]:
        return self.answers.pop(0) if self.answers else []

    def clock(self) -> float:
        return self.t


def alert(name: str, **labels: str) -> FiringAlert:
    return FiringAlert(name, {"alertname": name, **labels}, "2026-12-02T17:00:00Z", "")


def watched(script: Script, polls: int, fault_at: float, heal_at: float) -> AlertWatch:
    watch = AlertWatch(script.firing, clock=script.clock)
    watch.before = {(a.name, a.where) for a in script.firing()}
    for _ in range(polls):
        script.t += 1
        if script.t == fault_at:
            watch.mark("fault")
        if script.t == heal_at:
            watch.mark("heal")
        watch.poll_once()
    return watch


def test_an_alert_firing_before_the_fault_is_not_this_faults() -> None:
    old = alert("PatroniLeaderChanged", scope="gardenlab", timeline="2")
    new = alert("PatroniLeaderChanged", scope="gardenlab", timeline="3")
    script = Script([old], [old], [old], [old], [old, new], [new], [])
    watch = watched(script, 6, fault_at=2, heal_at=4)
    expect = (AlertExpectation("PatroniLeaderChanged", fire_within=5, resolve_within=5),)
    assert alert_failures(watch, expect, ()) == []
    [seen] = watch.alerts()
    assert (seen.where, seen.first, seen.resolved) == ("scope=gardenlab, timeline=3", 4, 6)


def test_late_missing_and_unresolved_alerts_are_named() -> None:
    down = alert("InstanceDown", job="patroni", instance="pg1")
    script = Script([], [], [], [], [], [], [down], [down], [down])
    watch = watched(script, 8, fault_at=1, heal_at=3)
    expect = (
        AlertExpectation("InstanceDown", fire_within=3, resolve_within=2),
        AlertExpectation("PatroniLeaderChanged", fire_within=30),
    )
    assert alert_failures(watch, expect, ()) == [
        "alert InstanceDown fired 5.0 s after the fault (budget 3 s)",
        "alert InstanceDown (instance=pg1, job=patroni) resolved never (budget 2 s)",
        "alert PatroniLeaderChanged did not fire",
    ]


def test_an_alert_that_must_never_fire_fails_the_scenario() -> None:
    script = Script([], [], [alert("PatroniTwoPrimaries", scope="gardenlab")], [])
    watch = watched(script, 4, fault_at=1, heal_at=2)
    assert alert_failures(watch, (), ("PatroniTwoPrimaries",)) == [
        "alert PatroniTwoPrimaries (scope=gardenlab) fired, which it must never do here"
    ]


def test_silent_monitoring_is_a_failure_not_a_pass() -> None:
    watch = AlertWatch(lambda: [], clock=lambda: 0.0)
    watch.marks = {"fault": 0.0, "heal": 1.0}
    assert alert_failures(watch, (), ())[0].startswith("Alertmanager never answered")


def test_clients_read_targets_and_active_alerts() -> None:
    def answer(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/targets":
            target = {"labels": {"job": "patroni", "instance": "pg1"}, "health": "down"}
            return httpx.Response(
                200, json={"data": {"activeTargets": [target | {"lastError": "refused"}]}}
            )
        assert request.url.params["active"] == "true"
        labels = {"alertname": "InstanceDown", "instance": "pg1", "severity": "critical"}
        found = {"labels": labels, "startsAt": "t", "annotations": {"summary": "down"}}
        return httpx.Response(200, json=[found])

    transport = httpx.MockTransport(answer)
    [target] = PrometheusClient("http://p", transport=transport).targets()
    assert (target.job, target.instance, target.up, target.error) == (
        "patroni",
        "pg1",
        False,
        "refused",
    )
    [firing] = AlertmanagerClient("http://a", transport=transport).firing()
    assert (firing.name, firing.where, firing.summary) == ("InstanceDown", "instance=pg1", "down")


def test_status_names_each_firing_alert_and_each_target_down() -> None:
    from harness.cli.output import monitoring_lines
    from harness.clients.monitoring import Target
    from harness.stack.lifecycle import StackStatus

    down = alert("InstanceDown", job="patroni", instance="pg1", severity="critical")
    targets = [
        Target("patroni", "pg1", "down", "connection refused"),
        Target("etcd", "etcd1", "up", ""),
    ]
    status = StackStatus({"pg1": "exited"}, None, "", [], [down], targets)
    lines = monitoring_lines(status)
    assert "InstanceDown (instance=pg1, job=patroni)" in lines[0]
    assert lines[1].endswith("patroni/pg1: connection refused")
    assert lines[2] == "monitoring: 1 alerts firing, 1/2 targets up"
    unreachable = StackStatus({}, None, "", [], monitoring_error="Prometheus does not answer")
    assert monitoring_lines(unreachable) == ["[yellow]monitoring:[/] Prometheus does not answer"]
