"""A scenario's report: a readable summary, result.json and the timeline plot."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

from harness.chaos.alerts import Seen
from harness.chaos.invariants import leader_changes
from harness.chaos.runner import Result
from harness.chaos.workload import Record
from harness.reports import timeline
from harness.stack.dashboard import Window


def summary(result: Result) -> str:
    v, o = result.verdict, result.verdict.outage

    def secs(value: float | None) -> str:
        return "-" if value is None else f"{value:.2f} s"

    lines = [
        f"scenario {result.scenario}: {'PASSED' if result.passed else 'FAILED'}",
        f"  fault: {result.fault}",
        f"  leader: {o.leader_before} -> {o.leader_after} ({o.leader_changes} changes)",
        f"  write outage (RTO): {secs(o.write_gap if o.gap_end is not None else None)}"
        + (" (writes never came back)" if o.gap_end is None else ""),
        f"    Patroni promoted after {secs(o.promoted_after)}, HAProxy switched after "
        f"{secs(o.haproxy_after)}, client wrote again after {secs(o.client_after)}",
        f"  writes: {v.attempted} attempted, {v.acknowledged} acknowledged, {v.failed} failed, "
        f"{v.unknown} unknown ({len(v.accounting.ghosts)} of them committed: ghosts)",
        f"  lost acknowledged: {len(v.accounting.lost)}, "
        f"unexpected: {len(v.accounting.unexpected)}, "
        f"refused yet present: {len(v.accounting.refused_present)}, "
        f"split brain: {'yes' if v.split_brain else 'no'}, converged: {v.converged}",
    ]
    lines += alert_lines(result.alerts, result.alert_marks)
    if result.note:
        lines.append(f"  note: {result.note}")
    lines += [f"  FAILURE: {failure}" for failure in result.failures]
    return "\n".join(lines)


def alert_lines(alerts: list[Seen], marks: dict[str, float]) -> list[str]:
    """Each alert as Alertmanager's API and the webhook's log saw it, from the fault and heal."""
    fault = marks.get("fault", 0.0)
    heal = marks.get("heal", fault)

    def times(fired: float | None, resolved: float | None) -> str:
        if fired is None:
            return "not seen"
        cleared = "still firing" if resolved is None else f"resolved {resolved - heal:+.1f} s"
        return f"fired {fired - fault:+.1f} s, {cleared}"

    lines = ["  alerts (fired: from the fault; resolved: from the heal):"] if alerts else []
    for a in alerts:
        lines.append(
            f"    {a.name} ({a.where or 'cluster'}): Alertmanager {times(a.first, a.resolved)};"
            f" webhook {times(a.notified, a.notified_resolved)}"
        )
    return lines


def write_report(result: Result, directory: Path) -> tuple[Path, Path]:
    """result.json and timeline.png in the directory."""
    directory.mkdir(parents=True, exist_ok=True)
    json_path = directory / "result.json"
    json_path.write_text(json.dumps(result.to_json(), indent=1, default=str))
    png_path = directory / "timeline.png"
    plot_timeline(result, png_path)
    return json_path, png_path


def record_window(
    record: Record, marks: Sequence[str] | None = ("fault", "heal")
) -> tuple[Window, list[float]]:
    """A workload's run as the dashboard's window, on the timeline's clock (0 s is the
    workload's start), with its marks (the named ones, or all with None): a spike in the
    report then reads next to what the servers did."""
    end = max([a.ended for a in record.attempts] + [1.0]) + 5
    names = record.marks if marks is None else [m for m in marks if m in record.marks]
    return Window(record.epoch, record.epoch + end, record.epoch), sorted(
        record.marks[m] for m in names
    )


def plot_timeline(result: Result, path: Path) -> None:
    """Acknowledged writes, errors and write latency, the fault shaded, leader changes marked."""
    record, outage = result.record, result.verdict.outage
    end = max([a.ended for a in record.attempts] + [1.0])
    spans = (
        [timeline.Span(record.marks["fault"], record.marks.get("heal", end), "orange", 0.2)]
        if "fault" in record.marks
        else []
    )
    timeline.plot(
        (
            timeline.Event(a.ended, a.outcome == "ack", (a.ended - a.started) * 1000)
            for a in record.attempts
        ),
        path,
        title=f"{result.scenario}: {result.fault} (shaded); leader {outage.leader_before} -> "
        f"{outage.leader_after} (dashed); write outage {outage.write_gap:.1f} s",
        ok_label="acks/s",
        latency_quantile=50,
        spans=spans,
        marks=[at for at, _leader in leader_changes(record)],
        bin_seconds=0.5,
    )
