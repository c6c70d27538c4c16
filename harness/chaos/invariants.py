"""What must hold once a scenario has healed, checked by code that can fail.

- lost: acknowledged writes missing afterwards (must be 0 under synchronous replication);
- unexpected: rows present that no writer attempted;
- refused yet present: writes the server refused on a live connection that committed all the
  same (the outcome was classified wrongly: every "fail" must be absent);
- ghosts: unknown outcomes that did commit (counted, not a failure);
- split brain: two servers acknowledging writes in interleaved time without the leader
  having changed that often;
- convergence: equal content on every node;
- outage: the client-visible write gap around the fault, with when Patroni promoted and
  when HAProxy switched, measured from the fault.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from itertools import pairwise
from typing import Any

from harness.chaos.workload import Record


@dataclass(frozen=True)
class Outage:
    write_gap: float  # seconds between the last ack before and the first ack after the fault
    gap_start: float
    gap_end: float | None  # None: writes never came back
    promoted_after: float | None  # first new leader seen, seconds after the fault
    haproxy_after: float | None  # HAProxy routing rw to that new leader, seconds after the fault
    client_after: float | None  # first ack after the gap, seconds after the fault
    leader_before: str
    leader_after: str
    leader_changes: int


@dataclass(frozen=True)
class Accounting:
    """Each recorded outcome against the ids a side holds."""

    lost: list[int]  # acknowledged, absent
    unexpected: list[int]  # present, never attempted
    refused_present: list[int]  # refused, present all the same
    ghosts: list[int]  # unknown outcome, committed

    @property
    def problems(self) -> list[str]:
        found = []
        if self.lost:
            found.append(f"{len(self.lost)} acknowledged writes lost (e.g. {self.lost[:5]})")
        if self.unexpected:
            found.append(f"{len(self.unexpected)} unexpected rows (e.g. {self.unexpected[:5]})")
        if self.refused_present:
            found.append(
                f"{len(self.refused_present)} refused writes committed all the same "
                f"(e.g. {self.refused_present[:5]})"
            )
        return found


def account(record: Record, present: set[int], acked_before: float = float("inf")) -> Accounting:
    """Lost counts the acks before `acked_before` only: a side that stopped taking the
    application's writes then need not hold the later ones."""
    failed = {a.id for a in record.attempts if a.outcome == "fail"}
    unknown = {a.id for a in record.attempts if a.outcome == "unknown"}
    return Accounting(
        lost=sorted(record.acked(acked_before) - present),
        unexpected=sorted(present - {a.id for a in record.attempts}),
        refused_present=sorted(failed & present),
        ghosts=sorted(unknown & present),
    )


@dataclass(frozen=True)
class Verdict:
    attempted: int
    acknowledged: int
    failed: int
    unknown: int
    accounting: Accounting
    split_brain: list[str]
    converged: bool
    differing_tables: list[str]
    outage: Outage

    @property
    def problems(self) -> list[str]:
        found = self.accounting.problems
        found += [f"split brain: {s}" for s in self.split_brain]
        if not self.converged:
            found.append(f"nodes differ on {', '.join(self.differing_tables)}")
        return found

    def to_json(self) -> dict[str, Any]:
        return {**asdict(self), "problems": self.problems}


def leader_changes(record: Record) -> list[tuple[float, str]]:
    """(time, new leader) each time the monitor saw a different leader; gaps ignored."""
    changes: list[tuple[float, str]] = []
    current = ""
    for sample in record.samples:
        if sample.leader and sample.leader != current:
            if current:
                changes.append((sample.at, sample.leader))
            current = sample.leader
    return changes


def outage(record: Record, fault_at: float) -> Outage:
    acks = sorted(a.ended for a in record.attempts if a.outcome == "ack")
    before = [t for t in acks if t <= fault_at]
    after = [t for t in acks if t > fault_at]
    # The largest gap between consecutive acks from the last one before the fault on.
    points = ([before[-1]] if before else [fault_at]) + after
    gap, start, end = 0.0, points[0], None
    for earlier, later in pairwise(points):
        if later - earlier > gap:
            gap, start, end = later - earlier, earlier, later
    if not after:
        last = record.samples[-1].at if record.samples else fault_at
        gap, start, end = last - points[0], points[0], None
    leaders = [s.leader for s in record.samples if s.leader]
    seen_before = [s.leader for s in record.samples if s.at <= fault_at and s.leader]
    before_leader = seen_before[-1] if seen_before else (leaders[0] if leaders else "")
    all_changes = leader_changes(record)
    changes = [c for c in all_changes if c[0] > fault_at]
    promoted = changes[0][0] - fault_at if changes else None
    switched = None
    if changes:
        new = changes[0][1]
        routed = [s.at for s in record.samples if s.at >= changes[0][0] and s.rw_backend == new]
        switched = routed[0] - fault_at if routed else None
    return Outage(
        write_gap=gap,
        gap_start=start,
        gap_end=end,
        promoted_after=promoted,
        haproxy_after=switched,
        client_after=(end - fault_at) if end is not None and end > fault_at else None,
        leader_before=before_leader,
        leader_after=leaders[-1] if leaders else "",
        leader_changes=len(all_changes),
    )


def client_gaps(record: Record, since: float = 0.0) -> dict[int, float]:
    """Per writer, the longest time between two of its acknowledged writes from `since` on
    (its last ack before `since` included): the outage one client saw, not the pool's."""
    acks: dict[int, list[float]] = {}
    for attempt in record.attempts:
        if attempt.outcome == "ack":
            acks.setdefault(attempt.writer, []).append(attempt.ended)
    gaps: dict[int, float] = {}
    for writer, times in acks.items():
        times.sort()
        before = [t for t in times if t <= since]
        points = before[-1:] + [t for t in times if t > since]
        gaps[writer] = max((b - a for a, b in pairwise(points)), default=0.0)
    return gaps


def client_errors(record: Record, since: float = 0.0) -> int:
    """Attempts from `since` on that did not succeed (refused, or broken mid-statement)."""
    return sum(1 for a in record.attempts if a.outcome != "ack" and a.started >= since)


def split_brain(record: Record) -> list[str]:
    """Acks by server in time order, collapsed into runs: a server coming back after another
    one (A, B, A) needs as many leader changes; otherwise two nodes accepted writes at once."""
    acks = sorted((a.ended, a.server) for a in record.attempts if a.outcome == "ack")
    runs: list[tuple[str, float, float]] = []  # server, first, last
    for at, server in acks:
        if runs and runs[-1][0] == server:
            runs[-1] = (server, runs[-1][1], at)
        else:
            runs.append((server, at, at))
    switches = len(runs) - 1
    allowed = len(leader_changes(record))
    if switches <= max(allowed, len({r[0] for r in runs}) - 1):
        return []
    return [
        f"{switches} switches between acknowledging servers but {allowed} leader changes: "
        + " -> ".join(f"{server} [{first:.1f}-{last:.1f} s]" for server, first, last in runs[:12])
    ]


def judge(
    record: Record, present: set[int], fault_at: float, differing_tables: list[str]
) -> Verdict:
    return Verdict(
        attempted=len({a.id for a in record.attempts}),
        acknowledged=record.count("ack"),
        failed=record.count("fail"),
        unknown=record.count("unknown"),
        accounting=account(record, present),
        split_brain=split_brain(record),
        converged=not differing_tables,
        differing_tables=differing_tables,
        outage=outage(record, fault_at),
    )
