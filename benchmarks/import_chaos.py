"""The exactly-once import scenarios over repeated runs: pass rate, each run's length and the
import's own (from the service's timestamps). Printed, never asserted.

Runs as its own Compose project (gardenlab-bench, ports +20000), seeded at the small scale,
and takes it down after. Every run adds its import's rows to agency 1, so later runs merge
into a larger leads table.

    python -m benchmarks.import_chaos --runs 5 [--scenarios import-link-cut,import-link-hang]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

from benchmarks.startup import BENCH_SETTINGS, timed_up
from harness.chaos.catalog import CATALOG
from harness.chaos.runner import run
from harness.data.crmdata import CrmData
from harness.data.scales import resolve_counts
from harness.data.seed import seed
from harness.lab.project import Lab
from harness.stack.lifecycle import Stack

IMPORT_SCENARIOS = [name for name, s in CATALOG.items() if s.imports]


def last_import(dsn: str) -> tuple[int, float]:
    """The latest import's id and its length in seconds (created to finished)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(
            "SELECT id, extract(epoch FROM finished_at - created_at) FROM app.imports "
            "ORDER BY id DESC LIMIT 1"
        ).fetchone()
    return (int(row[0]), float(row[1] or 0)) if row else (0, 0.0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--scenarios", default=",".join(IMPORT_SCENARIOS))
    parser.add_argument("--keep-up", action="store_true", help="leave the bench project running")
    args = parser.parse_args()
    names = args.scenarios.split(",")
    unknown = [n for n in names if n not in IMPORT_SCENARIOS]
    if unknown:
        parser.error(f"not import scenarios: {', '.join(unknown)} ({', '.join(IMPORT_SCENARIOS)})")
    base = Lab.discover()
    stack = Stack(Lab(root=base.root, settings={**base.settings, **BENCH_SETTINGS}), say=print)
    dsn = stack.lab.dsn("rw")
    rows: list[str] = []
    try:
        stack.down(volumes=True)
        timed_up(stack)
        seed(dsn, CrmData(42, resolve_counts("small")), reset=True, force=False)
        for name in names:
            scenario = CATALOG[name]
            walls, imports, passed = [], [], 0
            for index in range(1, args.runs + 1):
                before = last_import(dsn)[0]
                started = time.monotonic()
                result = run(stack, scenario, say=lambda _: None)
                walls.append(time.monotonic() - started)
                import_id, seconds = last_import(dsn)
                if import_id != before:
                    imports.append(seconds)
                passed += result.passed
                verdict = "passed" if result.passed else "FAILED: " + "; ".join(result.failures)
                print(
                    f"  {name} run {index}: {walls[-1]:.0f} s, import {seconds:.1f} s, {verdict}",
                    flush=True,
                )
            assert scenario.imports is not None
            rows.append(
                f"{name:<24} {scenario.imports.rows:>8,} {passed:>3}/{args.runs:<3} "
                f"{statistics.median(walls):7.0f} s {max(walls):5.0f} s "
                f"{statistics.median(imports) if imports else 0:8.1f} s "
                f"{max(imports, default=0):5.1f} s"
            )
    finally:
        if not args.keep_up:
            stack.down(volumes=True)
    print(
        f"{'scenario':<24} {'rows':>8} {'passed':<7} {'run p50':>9} {'max':>7} "
        f"{'import p50':>10} {'max':>7}"
    )
    print("\n".join(rows))


if __name__ == "__main__":
    main()
