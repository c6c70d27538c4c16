"""Figures of the move off hosted Supabase on the dev lab, printed, never asserted
(`make bench-migration`; the lab up with `make dev-up SOURCE=1 SOURCE_SCALE=prod` for the
production figures).

Per round, with writers running through the application endpoint the whole time: the
initial copy (start until every table streams), the cutover and the rollback (time paused,
largest gap between acknowledgements a client sees), client errors, acknowledged writes
lost forward and back. Once: `pg_dump -Fc | pg_restore` of the same database inside the
source's container (the "downtime" way), as the initial copy's yardstick; and, in the first
round while streaming, the forward path's lag under a heavier write load through the
endpoint (`--load-writers` at `--load-rate` each, for `--load-seconds`).
Targets: write gap <= 1 s p95, 0 client errors, 0 lost, initial sync <= 1.5x dump/restore.

    python -m benchmarks.migration [--runs 5] [--writers 4] [--load-writers 16]
"""

from __future__ import annotations

import argparse
import statistics
import time

from benchmarks.stats import percentile
from harness.chaos.workload import Workload, WorkloadTarget
from harness.cli.migration import lab_ddl_dumper
from harness.core.units import format_bytes
from harness.lab.project import Lab
from harness.lab.topology import SOURCE_SERVICE
from harness.migration.cutover import cutover, rollback
from harness.migration.drill import LagSampler
from harness.migration.endpoint import Endpoint
from harness.migration.plan import Move
from harness.migration.slots import PatroniSlots
from harness.migration.sync import finish, start, wait_copied
from harness.migration.writes import APP_WRITES, app_writes
from harness.provision.source import write_endpoint
from harness.stack.lifecycle import Stack

RESTORE_DB = "bench_restore"
# Seconds after a switch that its gap covers: Patroni restarts the sync standby to copy the
# way back's permanent slot about 2 s after the cutover, and the leader's commits wait for it.
SETTLE = 5.0


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


def lag_under_load(
    move: Move, target: WorkloadTarget, writers: int, rate: float, seconds: float
) -> None:
    """The forward path's lag, sampled every half second, while heavy writers run."""
    samples: list[tuple[float, str, int]] = []
    heavy = Workload(
        target,
        writers=writers,
        readers=0,
        rate=rate,
        max_seconds=seconds,
        table=app_writes("migration-load"),
    )
    with heavy, LagSampler(move, heavy.now, samples):
        time.sleep(seconds)
    forward = [float(b) for _, path, b in samples if path == "forward"]
    if not forward:
        print("lag under load: no sample of the forward slot")
        return
    print(
        f"lag under load ({writers} writers x {rate:.0f}/s for {seconds:.0f} s, "
        f"{heavy.record.count('ack') / seconds:.0f} writes/s acknowledged, "
        f"{heavy.record.count('fail') + heavy.record.count('unknown')} errors): forward lag "
        f"p50 {format_bytes(int(percentile(forward, 0.5)))}, p95 "
        f"{format_bytes(int(percentile(forward, 0.95)))}, max {format_bytes(int(max(forward)))} "
        f"over {len(forward)} samples"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--load-writers", type=int, default=16)
    parser.add_argument("--load-rate", type=float, default=50.0)
    parser.add_argument("--load-seconds", type=float, default=30.0)
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
        target = WorkloadTarget(
            app, app, move.source_dsn, tuple(lab.rest_urls()), patroni_ca=lab.rest_ca
        )
        writes = Workload(
            target, writers=args.writers, readers=0, max_seconds=3600, table=APP_WRITES
        )
        with writes:
            began = time.monotonic()
            start(move, lab_ddl_dumper(stack), reset=True)
            wait_copied(move, lambda _: None)
            copies.append(time.monotonic() - began)
            time.sleep(2)
            if run == 1 and args.load_writers:
                lag_under_load(move, target, args.load_writers, args.load_rate, args.load_seconds)
            for name in ("cutover", "rollback"):
                low = writes.now()
                if name == "cutover":
                    report = cutover(move, endpoint, slots=slots)
                else:
                    report = rollback(move, endpoint)
                high = writes.now()
                paused[name].append(report.paused_seconds)
                steps = ", ".join(f"{k} {v:.3f}" for k, v in report.steps.items())
                print(f"  {name} steps: {steps}")
                time.sleep(SETTLE)  # the gap is read once the writes after the switch exist
                gaps[name].append(writes.record.ack_gap(low - 1, high + SETTLE))
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
