"""RTO per failure type over repeated runs, lost writes in total, and how long monitoring
took to say so: each alert's latency from the fault to firing (and from Patroni's promotion,
when there was one) and from the heal to resolved. Printed, never asserted.

Runs scenarios of the catalog on the dev lab (`make dev-up && make seed` first):

    python -m benchmarks.chaos_rto --runs 5 [--ci | --scenarios leader-kill,switchover]
"""

from __future__ import annotations

import argparse
import statistics
from collections import defaultdict
from dataclasses import dataclass, field

from benchmarks.stats import percentile
from harness.chaos.catalog import CATALOG
from harness.chaos.runner import Result, run
from harness.lab.project import Lab
from harness.stack.lifecycle import Stack


@dataclass
class AlertTimes:
    """One alert of one scenario over the runs: seconds, one entry per run it fired in."""

    expected: bool
    fired: list[float] = field(default_factory=list)  # from the fault
    after_promotion: list[float] = field(default_factory=list)
    resolved: list[float] = field(default_factory=list)  # from the heal
    unresolved: int = 0


def collect_alerts(result: Result, times: dict[str, AlertTimes], expected: set[str]) -> None:
    """Fold one run's alerts in: each alert's first showing (either source), its clearing."""
    fault, heal = result.alert_marks["fault"], result.alert_marks["heal"]
    promoted = result.verdict.outage.promoted_after
    earliest: dict[str, float] = {}
    cleared: dict[str, float | None] = {}
    for seen in result.alerts:
        if seen.start < fault - 1:
            continue  # an earlier fault's, still showing
        earliest[seen.name] = min(earliest.get(seen.name, seen.start), seen.start)
        end, before = seen.cleared, cleared.get(seen.name, 0.0)
        cleared[seen.name] = None if end is None or before is None else max(end, before)
    for name, start in earliest.items():
        entry = times.setdefault(name, AlertTimes(name in expected))
        entry.fired.append(start - fault)
        if promoted is not None:
            entry.after_promotion.append(start - fault - promoted)
        end = cleared[name]
        if end is None:
            entry.unresolved += 1
        else:
            entry.resolved.append(end - heal)


def spread(values: list[float]) -> str:
    if not values:
        return f"{'-':>21}"
    return f"{statistics.median(values):6.1f} {percentile(values, 0.95):6.1f} {max(values):6.1f}s"


def print_alerts(runs: int, by_scenario: dict[str, dict[str, AlertTimes]]) -> None:
    print(
        "\nalert latency, seconds (p50 p95 max; fired: from the fault, after promotion: from "
        "the first new leader seen, resolved: from the heal; * = the scenario requires it)"
    )
    print(
        f"{'scenario':<27} {'alert':<26} {'runs':>5} {'fired':>21} "
        f"{'after promotion':>21} {'resolved':>21}"
    )
    for scenario, alerts in by_scenario.items():
        for name, t in sorted(alerts.items(), key=lambda kv: (not kv[1].expected, kv[0])):
            label = f"{name}{'*' if t.expected else ''}"
            open_ = f" ({t.unresolved} unresolved)" if t.unresolved else ""
            print(
                f"{scenario:<27} {label:<26} {len(t.fired):>2}/{runs:<2} {spread(t.fired)} "
                f"{spread(t.after_promotion)} {spread(t.resolved)}{open_}"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    which = parser.add_mutually_exclusive_group()
    which.add_argument("--scenarios", default=",".join(CATALOG))
    which.add_argument("--ci", action="store_true", help="the subset `make test` runs")
    args = parser.parse_args()
    stack = Stack(Lab.discover(), say=lambda _: None)
    names = [n for n, s in CATALOG.items() if s.ci] if args.ci else args.scenarios.split(",")
    unknown = [n for n in names if n not in CATALOG]
    if unknown:
        parser.error(f"unknown scenarios: {', '.join(unknown)}")
    print(
        f"{'scenario':<30} {'runs':>4} {'RTO p50':>8} {'RTO p95':>8} {'max':>7} "
        f"{'acked':>7} {'lost':>5} {'unknown':>7} {'ghosts':>6} {'passed':>6}"
    )
    total_lost = 0
    alerts: dict[str, dict[str, AlertTimes]] = defaultdict(dict)
    for name in names:
        gaps, acked, lost, unknown_, ghosts, passed = [], 0, 0, 0, 0, 0
        required = {e.name for e in CATALOG[name].alerts}
        for _ in range(args.runs):
            result = run(stack, CATALOG[name], say=lambda _: None)
            v = result.verdict
            gaps.append(v.outage.write_gap)
            acked += v.acknowledged
            lost += len(v.accounting.lost)
            unknown_ += v.unknown
            ghosts += len(v.accounting.ghosts)
            passed += result.passed
            collect_alerts(result, alerts[name], required)
            for failure in result.failures:
                print(f"  {name}: {failure}")
        total_lost += lost
        print(
            f"{name:<30} {args.runs:>4} {statistics.median(gaps):7.2f}s "
            f"{percentile(gaps, 0.95):7.2f}s {max(gaps):6.2f}s {acked:>7} {lost:>5} "
            f"{unknown_:>7} {ghosts:>6} {passed:>4}/{args.runs}",
            flush=True,
        )
    print(f"lost acknowledged writes in total: {total_lost}")
    print_alerts(args.runs, alerts)


if __name__ == "__main__":
    main()
