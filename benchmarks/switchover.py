"""What a planned switchover costs clients, through PgBouncer and on HAProxy's direct rw port.
Printed, never asserted.

Brings up its own project (`gardenlab-bench`, ports +20000) and takes it down afterwards.
Per run: the chaos workload's writers on one path, `harness switchover` (PgBouncer paused)
in the middle; client errors, the largest gap between two acknowledged writes of one
writer, and when Patroni and HAProxy moved (from the workload's monitor, sampled every
0.2 s), the old leader's shutdown checkpoint, and the hand-over's steps from the members' own logs
(the old leader's stop, its wait before releasing the key, the candidate taking it), to
show what bounds the gap:

    python -m benchmarks.switchover --runs 5 [--writers 4] [--paths pooler,rw] [--downinter MS]
"""

from __future__ import annotations

import argparse
import re
import statistics
import time
from dataclasses import replace
from datetime import UTC, datetime

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


STAMP = re.compile(r"(\d{4}-\d\d-\d\d \d\d:\d\d:\d\d)[.,](\d{3})")
NAN = float("nan")


def stamp(line: str) -> float | None:
    """The time a Patroni (`... 20:09:01,234 INFO:`) or PostgreSQL (`... 20:09:01.234 UTC`) log
    line carries, in seconds; both clocks are the host's."""
    match = STAMP.search(line)
    if not match:
        return None
    whole = datetime.strptime(match[1], "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
    return whole.timestamp() + int(match[2]) / 1000


def first_after(lines: list[str], text: str, since: float) -> float | None:
    for line in lines:
        at = stamp(line)
        if at is not None and at >= since and text in line:
            return at
    return None


def hand_over(stack: Stack, old: str, new: str) -> dict[str, float]:
    """The hand-over from the members' own logs, in seconds: the old leader's stop (from
    Patroni's `Demoting self` to PostgreSQL's `database system is shut down`), the wait
    until Patroni releases the leader key (its stop loop polls once a second, and sleeps one
    more when the postmaster outlives the shutdown checkpoint), and the candidate taking the
    key."""
    old_lines = stack.compose().logs([old], tail="400").splitlines()
    new_lines = stack.compose().logs([new], tail="400").splitlines()
    demotes = [at for line in old_lines if "Demoting self" in line and (at := stamp(line))]
    if not demotes:
        return {"stop": NAN, "key_wait": NAN, "takeover": NAN}
    start = demotes[-1]
    down = first_after(old_lines, "database system is shut down", start)
    released = first_after(old_lines, "Leader key released", start)
    taken = first_after(new_lines, "acquiring session lock", start)

    def between(a: float | None, b: float | None) -> float:
        return b - a if a is not None and b is not None else NAN

    return {
        "stop": between(start, down),
        "key_wait": between(down, released),
        "takeover": between(released, taken),
    }


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
        **hand_over(stack, result.leader, result.candidate),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--writers", type=int, default=4)
    parser.add_argument("--paths", default="pooler,rw", help="pooler (PgBouncer), rw (direct)")
    parser.add_argument(
        "--downinter",
        type=int,
        default=None,
        metavar="MS",
        help="HAProxy's check interval on down servers, for this run only [the preset's]",
    )
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
        preset = replace(get_preset("fast"), check_downinter_ms=args.downinter)
        print(
            f"HAProxy checks every {preset.check_inter_ms} ms, down servers every "
            f"{preset.check_downinter_ms or preset.check_inter_ms} ms"
        )
        bring_up(stack, preset, 240, ensure_engine=Engine().ensure)
        for path in paths:
            runs = [one_run(stack, path, args.writers) for _ in range(args.runs)]
            print(f"\n{path}: {args.runs} switchovers, {args.writers} writers")
            print(
                "  run  errors  client gap  pool gap  paused  patroni API  promoted  HAProxy"
                "  checkpoint  stop  key wait  takeover"
            )
            for i, r in enumerate(runs, start=1):
                print(
                    f"  {i:>3}  {r['errors']:>6.0f}  {r['client_gap']:9.2f}s {r['pool_gap']:8.2f}s"
                    f" {r['paused']:6.2f}s {r['patroni_api']:10.2f}s {r['promoted']:8.2f}s"
                    f" {r['haproxy']:7.2f}s {r['checkpoint']:10.3f}s {r['stop']:5.2f}s"
                    f" {r['key_wait']:8.2f}s {r['takeover']:8.2f}s"
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
