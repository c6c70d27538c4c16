"""RTO per failure type over repeated runs, and lost writes in total. Printed, never asserted.

Runs scenarios of the catalog on the dev lab (`make dev-up` first):

    python -m benchmarks.chaos_rto --runs 5 [--scenarios leader-kill,switchover]
"""

from __future__ import annotations

import argparse
import statistics

from benchmarks.stats import percentile
from harness.chaos.catalog import CATALOG
from harness.chaos.runner import run
from harness.lab.project import Lab
from harness.stack.lifecycle import Stack


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenarios", default=",".join(CATALOG))
    args = parser.parse_args()
    stack = Stack(Lab.discover(), say=lambda _: None)
    names = args.scenarios.split(",")
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    print(
        f"{'scenario':<30} {'runs':>4} {'RTO p50':>8} {'RTO p95':>8} {'max':>7} "
        f"{'acked':>7} {'lost':>5} {'unknown':>7} {'ghosts':>6} {'passed':>6}"
    )
    total_lost = 0
    for name in names:
        gaps, acked, lost, unknown_, ghosts, passed = [], 0, 0, 0, 0, 0
        for _ in range(args.runs):
            result = run(stack, CATALOG[name], say=lambda _: None)
            v = result.verdict
            gaps.append(v.outage.write_gap)
            acked += v.acknowledged
            lost += len(v.accounting.lost)
            unknown_ += v.unknown
            ghosts += len(v.accounting.ghosts)
            passed += result.passed
        total_lost += lost
        print(
            f"{name:<30} {args.runs:>4} {statistics.median(gaps):7.2f}s "
            f"{percentile(gaps, 0.95):7.2f}s {max(gaps):6.2f}s {acked:>7} {lost:>5} "
            f"{unknown_:>7} {ghosts:>6} {passed:>4}/{args.runs}"
        )
    print(f"lost acknowledged writes in total: {total_lost}")


if __name__ == "__main__":
    main()
