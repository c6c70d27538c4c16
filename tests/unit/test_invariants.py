"""The checkers on synthetic records: each one must be able to fail."""

from __future__ import annotations

from harness.chaos.invariants import account, judge, leader_changes, outage, split_brain
from harness.chaos.workload import Attempt, Outcome, Record, Sample


def attempt(id_: int, at: float, outcome: Outcome = "ack", server: str = "10.0.0.1") -> Attempt:
    return Attempt(id_, 1, at - 0.01, at, outcome, server if outcome == "ack" else "", "")


def failover_record() -> Record:
    """Acks on server .1 until 5 s, nothing until 25 s, then acks on .3; leader pg1 -> pg3."""
    attempts = [attempt(i, i * 0.1) for i in range(1, 50)]
    attempts += [attempt(100, 6.0, "unknown"), attempt(101, 7.0, "fail")]
    attempts += [attempt(200 + i, 25.0 + i * 0.1, server="10.0.0.3") for i in range(20)]
    samples = [
        Sample(
            t / 2,
            "pg1" if t < 48 else "pg3",
            1 if t < 48 else 2,
            "pg1" if t < 48 else ("" if t < 50 else "pg3"),
        )
        for t in range(60)
    ]
    return Record(attempts=attempts, samples=samples, marks={"fault": 5.0})


def test_a_clean_failover_passes_every_check() -> None:
    record = failover_record()
    present = {a.id for a in record.attempts if a.outcome == "ack"}
    verdict = judge(record, present, 5.0, [])
    assert verdict.problems == []
    assert (verdict.acknowledged, verdict.failed, verdict.unknown) == (69, 1, 1)
    assert verdict.accounting.ghosts == []
    gap = verdict.outage
    assert gap.client_after is not None
    assert round(gap.write_gap, 1) == 20.1 and round(gap.client_after, 1) == 20.0
    assert (gap.leader_before, gap.leader_after, gap.leader_changes) == ("pg1", "pg3", 1)
    assert gap.promoted_after == 19.0 and gap.haproxy_after == 20.0


def test_lost_unexpected_refused_and_ghost_writes_are_found() -> None:
    record = failover_record()
    present = {a.id for a in record.attempts if a.outcome == "ack"} - {7} | {100, 101, 999}
    verdict = judge(record, present, 5.0, ["chaos_writes"])
    accounting = verdict.accounting
    assert accounting.lost == [7]
    assert accounting.unexpected == [999]
    assert accounting.refused_present == [101]
    assert accounting.ghosts == [100]
    # lost, unexpected, refused yet present, not converged; ghosts are reported, not failed
    assert len(verdict.problems) == 4


def test_only_the_acks_before_a_moment_are_owed_by_a_side_that_stopped_taking_writes() -> None:
    record = failover_record()
    early = {a.id for a in record.attempts if a.outcome == "ack" and a.ended < 10}
    assert account(record, early, acked_before=10).problems == []
    assert account(record, early).lost == [200 + i for i in range(20)]


def test_two_servers_acknowledging_in_turns_without_failovers_is_split_brain() -> None:
    attempts = [
        attempt(i, i * 0.1, server="10.0.0.1" if i % 2 else "10.0.0.2") for i in range(1, 20)
    ]
    record = Record(attempts=attempts, samples=[Sample(0, "pg1", 1, "pg1")])
    assert split_brain(record)
    assert not split_brain(failover_record())


def test_writes_that_never_come_back_are_an_open_outage() -> None:
    record = failover_record()
    record.attempts = [a for a in record.attempts if a.ended < 5]
    gap = outage(record, 5.0)
    assert gap.gap_end is None and gap.client_after is None
    assert leader_changes(record) == [(24.0, "pg3")]
