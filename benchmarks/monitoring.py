"""Monitoring figures on the dev lab, printed, never asserted: memory and CPU of the monitoring
services at rest and under a steady load, the alerts that load fired (false alarms: the
load breaks nothing, so every one is a rule to fix), and what scraping costs the load: short
runs in turn with monitoring running and with every monitoring container paused (nothing
scrapes, nothing is scraped), the steady p95 of each. Exit 1 when an alert fired.

    make dev-up && make seed
    python -m benchmarks.monitoring --users 100 --minutes 10 [--pairs 2 --pair-minutes 2]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import threading
import time
from pathlib import Path

from harness.clients.monitoring import AlertLogClient, PrometheusClient
from harness.lab.project import Lab
from harness.lab.topology import ALERT_LOG
from harness.load.plan import LoadPlan
from harness.load.run import run_load
from harness.stack.lifecycle import Stack

MIB = 1024 * 1024
SAMPLE_EVERY = 15.0  # s between memory readings under load


def monitoring_services(stack: Stack) -> dict[str, str]:
    """container name -> service, for Prometheus, Alertmanager, the alert log and exporters."""
    return {
        c.name: c.service
        for c in stack.containers()
        if c.running
        and (
            c.service in ("prometheus", "alertmanager", ALERT_LOG)
            or c.service.endswith("-exporter")
        )
    }


def memory_mib(stack: Stack, names: dict[str, str]) -> dict[str, float]:
    return {names[n]: used / MIB for n, used in stack.runtime.memory_used(list(names)).items()}


def print_memory(title: str, usage: dict[str, float]) -> None:
    print(f"{title}: {sum(usage.values()):.1f} MiB in all (target <= 400 MiB)")
    for service, mib in sorted(usage.items()):
        print(f"  {service:<22} {mib:7.1f} MiB")


def steady_p95(stack: Stack, users: int, minutes: float, directory: Path) -> float:
    result = run_load(stack, LoadPlan(users=users, duration=minutes * 60), directory, say=print)
    return result.aggregate().p95


def scrape_effect(
    stack: Stack, names: dict[str, str], users: int, minutes: float, pairs: int, out: Path
) -> None:
    """Load runs in turn with and without monitoring (alternated, so drift hits both)."""
    p95: dict[str, list[float]] = {"with": [], "without": []}
    for pair in range(pairs):
        for mode in ("with", "without"):
            print(f"scrape effect, pair {pair + 1}/{pairs}: {mode} monitoring", flush=True)
            if mode == "without":
                stack.runtime.act("pause", list(names))
            try:
                p95[mode].append(steady_p95(stack, users, minutes, out / f"{mode}-{pair + 1}"))
            finally:
                if mode == "without":
                    stack.runtime.act("unpause", list(names))
    print(f"scrape effect on the load's steady p95 ({users} users, {minutes:g} min runs):")
    for mode, values in p95.items():
        runs = ", ".join(f"{v:.1f}" for v in values)
        print(f"  {mode:<8} monitoring: median {statistics.median(values):6.1f} ms ({runs})")
    change = statistics.median(p95["with"]) - statistics.median(p95["without"])
    print(f"  scraping adds {change:+.1f} ms to the median p95")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=100)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--out", default="artifacts/bench-monitoring")
    parser.add_argument("--pairs", type=int, default=2, help="with/without runs (0: none)")
    parser.add_argument("--pair-minutes", type=float, default=2.0)
    args = parser.parse_args()

    stack = Stack(Lab.discover(), say=print)
    names = monitoring_services(stack)
    if not names:
        sys.exit("the lab's monitoring services are not running: `make dev-up`")
    print_memory("monitoring at rest", memory_mib(stack, names))

    peak: dict[str, float] = {}
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(SAMPLE_EVERY):
            for service, mib in memory_mib(stack, names).items():
                peak[service] = max(peak.get(service, 0.0), mib)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    start = time.time()
    plan = LoadPlan(users=args.users, duration=args.minutes * 60)
    try:
        result = run_load(stack, plan, Path(args.out), say=print)
    finally:
        stop.set()
        sampler.join(SAMPLE_EVERY * 2)
    end = time.time()
    print_memory(f"monitoring under {args.users} users (peak of each)", peak)
    if result.servers is not None:
        seconds = result.servers.seconds
        cpu = {s: v for s, v in result.servers.cpu.items() if s in set(names.values())}
        print(f"monitoring CPU under load: {sum(cpu.values()) / seconds:.3f} cores in all")
        for service, used in sorted(cpu.items()):
            print(f"  {service:<22} {used / seconds:7.3f} cores")
    steady = result.aggregate()
    print(f"load: {steady.count:,} requests in the steady window, p95 {steady.p95:.1f} ms")

    # Let a `for` that began near the end run out, then read both sources.
    time.sleep(70)
    prometheus = PrometheusClient(stack.lab.url("prometheus"), timeout=10)
    log = AlertLogClient(stack.lab.url(ALERT_LOG), timeout=10)
    try:
        fired = prometheus.query_range('ALERTS{alertstate="firing"}', start, time.time(), 5)
        notified = [n for n in log.notifications(since=start) if n.status == "firing"]
    finally:
        prometheus.close()
        log.close()
    names_fired = sorted({labels.get("alertname", "?") for labels, _ in fired})
    print(
        f"false alarms in {(end - start) / 60:.1f} min at {args.users} users: "
        f"{len(names_fired)} alert(s) in Prometheus, {len(notified)} notification(s) in the "
        f"alert log" + (f": {', '.join(names_fired)}" if names_fired else "")
    )
    for n in notified:
        print(f"  notified {n.name} ({n.where}) at +{n.received - start:.0f} s")
    if args.pairs:
        scrape_effect(stack, names, args.users, args.pair_minutes, args.pairs, Path(args.out))
    sys.exit(1 if names_fired or notified else 0)


if __name__ == "__main__":
    main()
