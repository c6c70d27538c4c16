"""The whole move rehearsed on the lab, with the application writing all along: a fresh
source, writers through the application endpoint (the chaos workload: unique ids, every
attempt ack / fail / unknown), start, a Patroni failover while streaming, the cutover,
writes on the cluster, a failover inside the rollback window, the rollback, verify both
ways, finish. Every check can fail; the figures (write gaps, errors, times) are reported.

The failovers are Patroni's manual failover to the sync standby (the only candidate
synchronous mode accepts): the old leader is demoted cleanly, so the test is whether the
move's replication follows the new leader, not how fast a dead one is noticed (the chaos
catalog measures that). The forward path's slot is on the source, so only the cluster's
apply worker moves. The way back's slot is on the cluster: a Patroni permanent slot, which
Patroni copies to the replicas (the slot file copied, the replica restarted) and advances
there; the drill waits for that copy on the sync standby, says how long it took, and
fails if the new leader does not have the slot or the source stops following it.

The writers' table (`chaos_writes`, made on the source before `start`, so it is carried)
is checked ack by ack rather than by `verify`: its ids are one range per writer, not one
sequence, so verify's "up to the largest id of the other side" does not apply to it.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psycopg

from harness.chaos.invariants import Accounting, account, leader_changes
from harness.chaos.workload import CHAOS_WRITES, TABLE, Record, Workload, WorkloadTarget
from harness.core.errors import HarnessError, first_line
from harness.core.polling import holds, poll
from harness.core.progress import Say, silent
from harness.migration.catalog import connect, scalar
from harness.migration.cutover import CutoverReport, cutover, rollback
from harness.migration.endpoint import Endpoint
from harness.migration.plan import NAME, REVERSE, Move
from harness.migration.slots import SlotKeeper
from harness.migration.sync import DumpDdl, FinishReport, finish, start, status, wait_copied
from harness.migration.verify import Comparison, verify
from harness.reports import timeline
from harness.stack.lifecycle import Stack

WRITES_TABLE = f"public.{TABLE}"
SLOT_COPY_TIMEOUT = 90.0  # Patroni copies a permanent slot to a replica and restarts it
RESUME_TIMEOUT = 60.0  # a path streaming again after a failover
LEFTOVER_TIMEOUT = 20.0  # Patroni drops the replicas' copies of a forgotten slot in a loop


@dataclass(frozen=True)
class DrillOptions:
    writers: int = 4
    rate: float = 25.0  # writes per second per writer
    streaming_seconds: float = 3.0  # before and after the first failover
    window_seconds: float = 5.0  # writes on the cluster before and after the second one
    after_seconds: float = 3.0  # writes on the source after the rollback
    copy_timeout: float = 300.0


@dataclass
class Failover:
    phase: str  # streaming, rollback window
    old_leader: str
    new_leader: str
    seconds: float  # request to new leader
    resumed_seconds: float | None  # request to the move's path streaming again
    slot_copied_seconds: float | None = None  # waited for a sync standby holding the slot


@dataclass(frozen=True)
class Check:
    name: str
    passed: bool
    detail: str


@dataclass
class DrillResult:
    record: Record
    source_address: str = ""  # inet_server_addr() of the source: the acks it gave
    lag: list[tuple[float, str, int]] = field(default_factory=list)  # at, path, bytes
    failovers: list[Failover] = field(default_factory=list)
    cutover: CutoverReport | None = None
    rollback: CutoverReport | None = None
    verified: dict[str, list[Comparison]] = field(default_factory=dict)
    finished: FinishReport | None = None
    leftovers: list[str] = field(default_factory=list)
    on_cluster: Accounting | None = None  # the writers' outcomes against the cluster's rows
    on_source: Accounting | None = None  # ... and against the source's, at the end
    error: str = ""  # the step that stopped the drill, with its error
    checks: list[Check] = field(default_factory=list)
    figures: dict[str, float] = field(default_factory=dict)

    @property
    def passed(self) -> bool:
        return bool(self.checks) and all(c.passed for c in self.checks)

    def side(self, server: str) -> str:
        return "source" if server == self.source_address else "cluster"

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "checks": [asdict(c) for c in self.checks],
            "figures": self.figures,
            "error": self.error,
            "source_address": self.source_address,
            "failovers": [asdict(f) for f in self.failovers],
            "cutover": asdict(self.cutover) if self.cutover else None,
            "rollback": asdict(self.rollback) if self.rollback else None,
            "verified": {k: [asdict(c) for c in v] for k, v in self.verified.items()},
            "finished": asdict(self.finished) if self.finished else None,
            "leftovers": self.leftovers,
            "on_cluster": asdict(self.on_cluster) if self.on_cluster else None,
            "on_source": asdict(self.on_source) if self.on_source else None,
            "lag": self.lag,
            "workload": self.record.to_json(),
        }


class LagSampler:
    """Both paths' lag every half second: the source's slot before the cutover, the
    cluster's (the way back) after it. A side that does not answer is skipped."""

    def __init__(self, move: Move, now: Callable[[], float], into: list[tuple[float, str, int]]):
        self.move, self.now, self.into = move, now, into
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> LagSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(10)

    def _loop(self) -> None:
        query = (
            "select pg_current_wal_lsn() - confirmed_flush_lsn from pg_replication_slots "
            "where slot_name = %s"
        )
        paths = (("forward", self.move.source_dsn, NAME), ("back", self.move.cluster_dsn, REVERSE))
        while not self._stop.wait(0.5):
            for path, dsn, slot in paths:
                try:
                    with psycopg.connect(dsn, autocommit=True, connect_timeout=2) as conn:
                        row = conn.execute(query, (slot,)).fetchone()
                except psycopg.Error:
                    continue
                if row is not None and row[0] is not None:
                    self.into.append((self.now(), path, int(row[0])))


def leader_and_sync_standby(stack: Stack) -> tuple[str, str]:
    """The leader and the sync standby (a manual failover's only candidate in synchronous
    mode), or "" for either while there is none."""
    try:
        with stack.patroni() as patroni:
            cluster = patroni.cluster()
    except HarnessError:
        return "", ""
    standbys = cluster.sync_standbys
    return (cluster.leader.name if cluster.leader else ""), (standbys[0].name if standbys else "")


def has_slot(stack: Stack, node: str, slot: str) -> bool:
    try:
        return (
            stack.node_sql(node, f"select 1 from pg_replication_slots where slot_name = '{slot}'")
            == "1"
        )
    except HarnessError:
        return False


def fail_over(
    stack: Stack,
    phase: str,
    resumed: Callable[[], bool],
    on_request: Callable[[], None],
    slot: str = "",
) -> Failover:
    """Patroni's manual failover to the sync standby (after waiting, for `slot`, until the
    standby has Patroni's copy of it), then the wait until the move streams again."""
    began = time.monotonic()

    def candidate_ready() -> tuple[str, str]:
        leader, candidate = leader_and_sync_standby(stack)
        return (
            (leader, candidate)
            if candidate and (not slot or has_slot(stack, candidate, slot))
            else ("", "")
        )

    # Patroni names a sync standby again a few seconds after a failover, and restarts a
    # replica to load a permanent slot's copy (which costs it the sync role for a while).
    ready = poll(candidate_ready, lambda pair: bool(pair[1]), timeout=SLOT_COPY_TIMEOUT)
    if not ready.held:
        raise HarnessError(
            "no sync standby"
            + (f" holding the slot {slot}" if slot else "")
            + f" within {SLOT_COPY_TIMEOUT:.0f} s",
            "`harness status` shows the cluster; Patroni copies permanent slots to replicas",
        )
    leader, candidate = ready.value
    copied = time.monotonic() - began if slot else None
    on_request()
    began = time.monotonic()
    with stack.patroni() as patroni:
        patroni.failover(candidate)
        took = poll(
            lambda: patroni.cluster().leader,
            lambda m: m is not None and m.name == candidate,
            timeout=RESUME_TIMEOUT,
        )
    if not took.held:
        raise HarnessError(f"{candidate} did not take over from {leader}", "`harness status`")
    seconds = time.monotonic() - began
    back = poll(resumed, holds, timeout=RESUME_TIMEOUT)
    return Failover(
        phase, leader, candidate, seconds, time.monotonic() - began if back.held else None, copied
    )


def forward_streaming(move: Move) -> Callable[[], bool]:
    def streaming() -> bool:
        try:
            now = status(move)
        except HarnessError:
            return False
        return now.worker and bool(now.slot_active) and not now.source_error

    return streaming


def back_streaming(move: Move) -> Callable[[], bool]:
    """The source's subscription applying from the (new) leader's copy of the slot."""

    def streaming() -> bool:
        try:
            with connect(move.cluster_dsn, "cluster") as cl:
                return bool(
                    scalar(
                        cl,
                        "select active from pg_replication_slots where slot_name = %s",
                        (REVERSE,),
                    )
                )
        except (HarnessError, psycopg.Error):
            return False

    return streaming


def leftovers(stack: Stack, move: Move) -> list[str]:
    """Whatever of the move still exists after finish: slots (on every node, Patroni's
    replica copies too), publications, subscriptions, a permanent slot in Patroni's config."""
    names = (NAME, REVERSE)
    objects = (
        "select 'slot ' || slot_name from pg_replication_slots where slot_name = any(%s) "
        "union all select 'publication ' || pubname from pg_publication where pubname = any(%s) "
        "union all select 'subscription ' || subname from pg_subscription where subname = any(%s)"
    )
    found: list[str] = []
    for what, dsn in (("source", move.source_dsn), ("cluster", move.cluster_dsn)):
        with connect(dsn, what) as conn:
            found += [f"{r[0]} ({what})" for r in conn.execute(objects, (list(names),) * 3)]
    with stack.patroni() as patroni:
        members = [m.name for m in patroni.cluster().members]
        if REVERSE in (patroni.config().get("slots") or {}):
            found.append(f"permanent slot {REVERSE} (Patroni's configuration)")

    def copies() -> list[str]:
        return [f"slot {REVERSE} ({node})" for node in members if has_slot(stack, node, REVERSE)]

    return found + poll(copies, lambda left: not left, timeout=LEFTOVER_TIMEOUT).value


def judge(result: DrillResult) -> None:
    """The checks (each can fail) and the figures, from what the drill recorded."""
    record, marks = result.record, result.record.marks
    checks = [Check("drill completed", not result.error, result.error or "every step ran")]
    for way, accounting in (
        ("on the way to the cluster", result.on_cluster),
        ("on the way back to the source", result.on_source),
    ):
        problems = accounting.problems if accounting else []
        checks.append(
            Check(
                f"every write as its outcome says {way}: none acknowledged lost, none refused "
                "or unattempted present",
                not problems,
                "; ".join(problems)
                or (
                    f"{len(accounting.ghosts)} of {record.count('unknown')} unknown outcomes "
                    "committed"
                    if accounting
                    else "not reached"
                ),
            )
        )
    for way in ("after cutover", "after rollback"):
        compared = result.verified.get(way)
        differing = [c.source_table for c in compared or [] if not c.passed]
        checks.append(
            Check(
                f"verify {way}: every table equal",
                compared is not None and not differing,
                f"differing: {', '.join(differing)}"
                if differing
                else (f"{len(compared)} tables equal" if compared else "not run"),
            )
        )
    window = [f for f in result.failovers if f.phase == "rollback window"]
    checks.append(
        Check(
            "the way back survived the failover in the rollback window",
            bool(window) and window[0].resumed_seconds is not None and result.rollback is not None,
            (
                f"slot on {window[0].new_leader}, the source following it again after "
                f"{window[0].resumed_seconds:.1f} s"
                if window and window[0].resumed_seconds is not None
                else "the source did not follow the new leader"
            ),
        )
    )
    checks.append(
        Check(
            "finish left nothing holding WAL",
            result.finished is not None and not result.leftovers and not result.finished.left,
            ", ".join(result.leftovers + (result.finished.left if result.finished else []))
            or "no slot, publication or subscription of the move on either side",
        )
    )
    result.checks = checks
    figures: dict[str, float] = {
        "acknowledged": record.count("ack"),
        "failed": record.count("fail"),
        "unknown": record.count("unknown"),
    }
    for name, report in (("cutover", result.cutover), ("rollback", result.rollback)):
        if report is None:
            continue
        low, high = marks[f"{name} start"], marks[f"{name} end"]
        figures[f"{name} seconds"] = high - low
        figures[f"{name} paused seconds"] = report.paused_seconds
        figures[f"{name} write gap seconds"] = record.ack_gap(low - 1, high + 1)
        figures[f"{name} client errors"] = record.errors_between(low - 1, high + 1)
    for failover in result.failovers:
        at = marks[f"failover ({failover.phase})"]
        figures[f"failover ({failover.phase}) write gap seconds"] = record.ack_gap(
            at - 1, at + failover.seconds + 1
        )
        figures[f"failover ({failover.phase}) client errors"] = record.errors_between(
            at - 1, at + (failover.resumed_seconds or failover.seconds) + 1
        )
    result.figures = figures


def run_drill(
    stack: Stack,
    move: Move,
    endpoint: Endpoint,
    slots: SlotKeeper,
    dump_ddl: DumpDdl,
    fresh_source: Callable[[], object],  # recreates the lab's source, seeded
    options: DrillOptions = DrillOptions(),
    say: Say = silent,
) -> DrillResult:
    """The rehearsal, start to finish; always finishes the move and stops the writers."""
    lab = stack.lab
    say("clearing any earlier move and preparing a fresh source")
    finish(move, slots)
    fresh_source()
    if endpoint.upstream() != move.source_upstream:
        endpoint.repoint(*move.source_upstream)
    app_dsn = lab.dsn("endpoint", connect_timeout=2, keepalives=True)

    def source_address() -> str:
        try:
            with psycopg.connect(app_dsn, autocommit=True, prepare_threshold=None) as conn:
                return str(scalar(conn, "select host(inet_server_addr())"))
        except psycopg.Error:
            return ""

    address = poll(source_address, bool, timeout=30)
    if not address.held:
        raise HarnessError("the application endpoint does not answer", "`harness up --source`")
    target = WorkloadTarget(
        app_dsn, app_dsn, move.source_dsn, tuple(lab.rest_urls()), lab.url("stats", "/;csv")
    )
    workload = Workload(
        target, writers=options.writers, readers=0, rate=options.rate, max_seconds=900
    )
    result = DrillResult(workload.record, source_address=address.value)
    stage = "start"
    with workload, LagSampler(move, workload.now, result.lag):
        try:
            time.sleep(1)
            workload.mark("start")
            say("start: schema, publication, subscription, initial copy")
            start(move, dump_ddl, reset=True)
            wait_copied(move, lambda _: None, options.copy_timeout)
            workload.mark("copied")
            time.sleep(options.streaming_seconds)
            stage = "failover while streaming"
            say(stage)
            result.failovers.append(
                fail_over(
                    stack,
                    "streaming",
                    forward_streaming(move),
                    lambda: workload.mark("failover (streaming)"),
                )
            )
            time.sleep(options.streaming_seconds)
            stage = "cutover"
            say(stage)
            workload.mark("cutover start")
            result.cutover = cutover(move, endpoint, slots=slots)
            workload.mark("cutover end")
            stage = "verify after cutover"
            result.verified["after cutover"] = verify(move, "cluster", skip=(WRITES_TABLE,))
            time.sleep(options.window_seconds)
            stage = "failover in the rollback window"
            say(f"{stage} (once the sync standby has the way back's slot)")
            result.failovers.append(
                fail_over(
                    stack,
                    "rollback window",
                    back_streaming(move),
                    lambda: workload.mark("failover (rollback window)"),
                    REVERSE,
                )
            )
            time.sleep(options.window_seconds)
            stage = "rollback"
            say(stage)
            workload.mark("rollback start")
            result.rollback = rollback(move, endpoint)
            workload.mark("rollback end")
            time.sleep(options.after_seconds)
        except HarnessError as exc:
            result.error = f"{stage}: {exc.message}"
            say(f"drill stopped at {stage}: {exc.message}")
        workload.mark("writers stopped")
    try:
        if result.rollback is not None:
            result.verified["after rollback"] = verify(move, "source", skip=(WRITES_TABLE,))
        record = result.record
        if result.cutover is not None:
            result.on_cluster = account(
                record,
                CHAOS_WRITES.ids_on(move.cluster_dsn),
                record.marks.get("rollback start", float("inf")),
            )
        result.on_source = account(record, CHAOS_WRITES.ids_on(move.source_dsn))
    except (HarnessError, psycopg.Error) as exc:
        message = exc.message if isinstance(exc, HarnessError) else first_line(exc)
        result.error = result.error or f"checks: {message}"
    say("finish: dropping both paths")
    result.finished = finish(move, slots)
    result.leftovers = leftovers(stack, move)
    judge(result)
    return result


def summary(result: DrillResult) -> str:
    lines = [f"migration drill: {'PASSED' if result.passed else 'FAILED'}"]
    lines += [f"  [{'ok' if c.passed else 'FAIL'}] {c.name}: {c.detail}" for c in result.checks]
    lines.append("figures:")
    lines += [
        f"  {name}: {value:.3f}" if isinstance(value, float) else f"  {name}: {value}"
        for name, value in result.figures.items()
    ]
    for f in result.failovers:
        copied = (
            f"; waited {f.slot_copied_seconds:.1f} s for a sync standby holding the slot"
            if f.slot_copied_seconds is not None
            else ""
        )
        resumed = f"{f.resumed_seconds:.1f} s" if f.resumed_seconds is not None else "never"
        lines.append(
            f"  failover ({f.phase}): {f.old_leader} -> {f.new_leader} in {f.seconds:.1f} s, "
            f"streaming again after {resumed}{copied}"
        )
    for name, report in (("cutover", result.cutover), ("rollback", result.rollback)):
        if report is not None:
            steps = ", ".join(f"{k} {v:.3f}" for k, v in report.steps.items())
            lines.append(f"  {name} steps: {steps}")
    return "\n".join(lines) + "\n"


def plot(result: DrillResult, path: Path) -> None:
    """Acks per second on each side, errors, latency and both paths' lag; the cutover and
    rollback windows shaded, leader changes dashed."""
    record, marks = result.record, result.record.marks
    spans = [
        timeline.Span(marks[f"{name} start"], marks[f"{name} end"], colour, 0.3)
        for name, colour in (("cutover", "orange"), ("rollback", "red"))
        if f"{name} end" in marks
    ]
    if "cutover end" in marks:  # the rollback window
        spans.append(
            timeline.Span(
                marks["cutover end"],
                marks.get("rollback start", marks["writers stopped"]),
                "gold",
                0.1,
            )
        )
    timeline.plot(
        (
            timeline.Event(
                a.ended, a.outcome == "ack", (a.ended - a.started) * 1000, result.side(a.server)
            )
            for a in record.attempts
        ),
        path,
        title="migration drill: cutover (orange), rollback window (gold), rollback (red); "
        "leader changes dashed",
        ok_label="acks/s by side",
        latency_quantile=50,
        spans=spans,
        marks=[at for at, _leader in leader_changes(record)],
        bin_seconds=0.5,
        gauge=("lag kB (live path)", live_lag(result)),
    )


def live_lag(result: DrillResult) -> list[tuple[float, float]]:
    """The lag of the path that carries the application's writes: forward until the
    cutover, the way back after it."""
    switched = result.record.marks.get("cutover end", float("inf"))
    return [
        (at, n / 1024)
        for at, path, n in result.lag
        if (path == "forward" and at < switched) or (path == "back" and at >= switched)
    ]


def write_report(result: DrillResult, directory: Path) -> tuple[Path, Path, Path]:
    directory.mkdir(parents=True, exist_ok=True)
    json_path, text_path, png_path = (
        directory / "drill.json",
        directory / "summary.txt",
        directory / "timeline.png",
    )
    json_path.write_text(json.dumps(result.to_json(), indent=2) + "\n")
    text_path.write_text(summary(result))
    plot(result, png_path)
    return json_path, text_path, png_path
