"""Figures of the move off hosted Supabase on the dev lab, printed, never asserted
(`make bench-migration`; the lab up with `make dev-up SOURCE=1 SOURCE_SCALE=prod` for the
production figures).

Per round, with writers running through the application endpoint the whole time: the
initial copy (start until every table streams), the cutover and the rollback (time paused,
largest gap between acknowledgements a client sees), client errors, acknowledged writes
lost forward and back. Once: `pg_dump -Fc | pg_restore` of the same database inside the
source's container (the "downtime" way), as the initial copy's yardstick.
Targets: write gap <= 1 s p95, 0 client errors, 0 lost, initial sync <= 1.5x dump/restore.

    python -m benchmarks.migration [--runs 5] [--writers 4]
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.stats import percentile
from harness.chaos.workload import Workload, WorkloadTarget
from harness.cli.migration import lab_ddl_dumper
from harness.lab.project import Lab
from harness.lab.topology import SOURCE_SERVICE
from harness.migration.cutover import cutover, rollback
from harness.migration.endpoint import Endpoint
from harness.migration.plan import Move
from harness.migration.slots import PatroniSlots
from harness.migration.sync import finish, start, wait_copied
from harness.migration.writes import APP_WRITES
from harness.provision.source import write_endpoint
from harness.stack.lifecycle import Stack

RESTORE_DB = "bench_restore"


def dump_restore_seconds(stack: Stack) -> float:
    """pg_dump | pg_restore of the whole database into a scratch database on the source."""

    def run(*command: str) -> str:
        return stack.execute(SOURCE_SERVICE, list(command), "postgres")

    run("dropdb", "--if-exists", RESTORE_DB)
    run("createdb", RESTORE_DB)
    started = time.monotonic()
    run(
        "sh",
        "-c",
        f"pg_dump -Fc --no-subscriptions -d postgres | pg_restore --no-owner -d {RESTORE_DB}",
    )
    seconds = time.monotonic() - started
    run("dropdb", RESTORE_DB)
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--writers", type=int, default=4)
    args = parser.parse_args()
    stack = Stack(Lab.discover())
    lab = stack.lab
    move = Move.of_lab(lab)
    endpoint = Endpoint.at(move.endpoint_admin_dsn, lambda h, p: write_endpoint(lab, h, p))
    slots = PatroniSlots(stack)

    baseline = dump_restore_seconds(stack)
    print(f"pg_dump | pg_restore of the source database: {baseline:.1f} s")
    copies: list[float] = []
    gaps: dict[str, list[float]] = {"cutover": [], "rollback": []}
    paused: dict[str, list[float]] = {"cutover": [], "rollback": []}
    errors = lost = 0
    for run in range(1, args.runs + 1):
        finish(move, slots)
        if endpoint.upstream() != move.source_upstream:
            endpoint.repoint(*move.source_upstream)
        app = lab.dsn("endpoint", connect_timeout=2, keepalives=True)
        target = WorkloadTarget(app, app, move.source_dsn, tuple(lab.rest_urls()))
        writes = Workload(
            target, writers=args.writers, readers=0, max_seconds=3600, table=APP_WRITES
        )
        with writes:
            began = time.monotonic()
            start(move, lab_ddl_dumper(stack), reset=True)
            wait_copied(move, lambda _: None)
            copies.append(time.monotonic() - began)
            time.sleep(2)
            for name in ("cutover", "rollback"):
                low = writes.now()
                if name == "cutover":
                    report = cutover(move, endpoint, slots=slots)
                else:
                    report = rollback(move, endpoint)
                high = writes.now()
                paused[name].append(report.paused_seconds)
                gaps[name].append(writes.record.ack_gap(low - 1, high + 1))
                time.sleep(2)
        record = writes.record
        errors += record.count("fail") + record.count("unknown")
        lost += len(record.acked() - APP_WRITES.ids_on(move.source_dsn))
        print(
            f"run {run}: copy {copies[-1]:.1f} s; cutover gap {gaps['cutover'][-1]:.3f} s "
            f"(paused {paused['cutover'][-1]:.3f}); rollback gap {gaps['rollback'][-1]:.3f} s; "
            f"{record.count('ack')} acks"
        )
    finish(move, slots)
    print(
        f"initial copy p50 {statistics.median(copies):.1f} s = "
        f"{statistics.median(copies) / baseline:.2f}x dump/restore"
    )
    for name in gaps:
        print(
            f"{name} write gap p50 {percentile(gaps[name], 0.5):.3f} s, "
            f"p95 {percentile(gaps[name], 0.95):.3f} s; paused p50 "
            f"{percentile(paused[name], 0.5):.3f} s"
        )
    print(f"client errors {errors}; acknowledged writes lost forward and back {lost}")


if __name__ == "__main__":
    main()
