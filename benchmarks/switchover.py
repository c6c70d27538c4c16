"""What a planned switchover costs clients, through PgBouncer and on HAProxy's direct rw port.
Printed, never asserted.

Brings up its own project (`gardenlab-bench`, ports +20000) and takes it down afterwards.
Per run: the chaos workload's writers on one path, `harness switchover` (PgBouncer paused)
in the middle; client errors, the largest gap between two acknowledged writes of one
writer, and when Patroni and HAProxy moved (from the workload's monitor, sampled every
0.2 s), and the old leader's shutdown checkpoint from its log, to show what bounds the gap:

    python -m benchmarks.switchover --runs 5 [--writers 4] [--paths pooler,rw]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time

from benchmarks.stats import percentile
from harness.chaos.invariants import client_errors, client_gaps, outage
from harness.chaos.workload import Workload, WorkloadTarget
from harness.lab.presets import get_preset
from harness.lab.project import Lab, shifted_ports
from harness.lab.topology import EndpointName
from harness.maintenance.planned import Planned
from harness.provision.up import bring_up
from harness.stack.engine import Engine
from harness.stack.lifecycle import Stack

BENCH_SETTINGS = {"GARDENLAB_PROJECT": "gardenlab-bench", **shifted_ports(20000)}
STEADY = 3.0  # s of writes before the switchover
AFTER = 4.0  # s of writes after it


SHUTDOWN_CHECKPOINT = re.compile(r"checkpoint complete: .*total=([0-9.]+) s")


def demotion_checkpoint(stack: Stack, node: str) -> float:
    """The old leader's shutdown checkpoint, from its PostgreSQL log (log_checkpoints is on
    by default): the last `checkpoint complete` after `checkpoint starting: shutdown`."""
    lines = stack.compose().logs([node], tail="300").splitlines()
    starts = [i for i, line in enumerate(lines) if "checkpoint starting: shutdown" in line]
    if not starts:
        return float("nan")
    for line in lines[starts[-1] :]:
        if match := SHUTDOWN_CHECKPOINT.search(line):
            return float(match[1])
    return float("nan")


def one_run(stack: Stack, endpoint: EndpointName, writers: int) -> dict[str, float]:
    planned = Planned(stack)
    stack.wait_ready(120)
    with Workload(WorkloadTarget.of_lab(stack.lab, endpoint), writers=writers) as load:
        time.sleep(STEADY)
        load.mark("fault")
        result = planned.switchover()
        time.sleep(AFTER)
    record = load.record
    gaps = client_gaps(record, record.marks["fault"])
    seen = outage(record, record.marks["fault"])
    return {
        "errors": client_errors(record, record.marks["fault"]),
        "client_gap": max(gaps.values()),
        "pool_gap": seen.write_gap,
        "paused": result.paused,
        "patroni_api": result.switchover,
        "promoted": seen.promoted_after if seen.promoted_after is not None else float("nan"),
        "haproxy": seen.haproxy_after if seen.haproxy_after is not None else float("nan"),
        "checkpoint": demotion_checkpoint(stack, result.leader),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--paths", default="pooler,rw", help="pooler (PgBouncer), rw (direct)")
    args = parser.parse_args()
    paths: list[EndpointName] = []
    for path in args.paths.split(","):
        if path not in ("pooler", "rw"):
            parser.error(f"unknown path {path!r}: choose pooler, rw")
        paths.append(path)
    base = Lab.discover()
    stack = Stack(Lab(root=base.root, settings={**base.settings, **BENCH_SETTINGS}), say=print)
    try:
        stack.down(volumes=True)
        bring_up(stack, get_preset("fast"), 240, ensure_engine=Engine().ensure)
        for path in paths:
            runs = [one_run(stack, path, args.writers) for _ in range(args.runs)]
            print(f"\n{path}: {args.runs} switchovers, {args.writers} writers")
            print(
                "  run  errors  client gap  pool gap  paused  patroni API  promoted  HAProxy"
                "  checkpoint"
            )
            for i, r in enumerate(runs, start=1):
                print(
                    f"  {i:>3}  {r['errors']:>6.0f}  {r['client_gap']:9.2f}s {r['pool_gap']:8.2f}s"
                    f" {r['paused']:6.2f}s {r['patroni_api']:10.2f}s {r['promoted']:8.2f}s"
                    f" {r['haproxy']:7.2f}s {r['checkpoint']:10.3f}s"
                )
            gaps = [r["client_gap"] for r in runs]
            print(
                f"  largest gap one client saw: p50 {statistics.median(gaps):.2f} s, "
                f"p95 {percentile(gaps, 0.95):.2f} s, max {max(gaps):.2f} s; "
                f"client errors in all: {sum(r['errors'] for r in runs):.0f}"
            )
    finally:
        stack.down(volumes=True)


if __name__ == "__main__":
    main()
