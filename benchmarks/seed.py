"""Seeding figures for a scale, printed, never asserted (run on the dev lab: `make dev-up`).

1. the seeder end to end: generation overlapped with COPY, index rebuild, into the
   replicated cluster;
2. the same pipeline fed rows generated beforehand: the loading limit;
3. `pgbench -i` with the same row count, on the leader, as a reference.
Target for prod: (1) <= 60 s and <= 1.5 x (2), i.e. generation is not the bottleneck.

    python -m benchmarks.seed [--scale prod] [--seed 42]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator

from harness.data.crmdata import CrmData
from harness.data.scales import SCALES, resolve_counts
from harness.data.seed import seed
from harness.lab.project import Lab
from harness.stack.lifecycle import Stack

PGBENCH_ROWS_PER_SCALE = 100_000


class Pregenerated(CrmData):
    """The same rows, generated before the clock starts."""

    def __init__(self, data: CrmData) -> None:
        super().__init__(data.seed, data.counts)
        self.chunks = {table: list(data.rows(table)) for table in data.counts}

    def rows(self, table: str) -> Iterator[str]:
        yield from self.chunks[table]


def timed_seed(dsn: str, data: CrmData) -> tuple[float, dict[str, float]]:
    start = time.monotonic()
    report = seed(dsn, data, reset=True, force=False, say=print)
    return time.monotonic() - start, report.seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=list(SCALES), default="prod")
    parser.add_argument("--seed", type=int, default=42)
    args = parser.parse_args()
    lab = Lab.discover()
    stack = Stack(lab)
    dsn = lab.dsn("rw")
    counts = resolve_counts(args.scale)
    rows = sum(counts.values())

    pre_start = time.monotonic()
    pregenerated = Pregenerated(CrmData(args.seed, counts))
    generation = time.monotonic() - pre_start
    copy_total, copy_phases = timed_seed(dsn, pregenerated)
    del pregenerated
    # Other parameters first, so the end-to-end run really loads.
    seed(
        dsn,
        CrmData(args.seed + 1, resolve_counts("small")),
        reset=True,
        force=False,
        say=print,
    )
    e2e_total, e2e_phases = timed_seed(dsn, CrmData(args.seed, counts))

    with stack.patroni() as patroni:
        leader = patroni.cluster().leader
    assert leader is not None
    scale = max(1, round(rows / PGBENCH_ROWS_PER_SCALE))
    start = time.monotonic()
    stack.node_sql(leader.name, "select 1")  # warm the exec path
    stack.execute(leader.name, ["pgbench", "-i", "-q", "-s", str(scale), "postgres"], "postgres")
    pgbench = time.monotonic() - start
    stack.execute(leader.name, ["pgbench", "-i", "-I", "d", "postgres"], "postgres")

    def phases(p: dict[str, float]) -> str:
        return ", ".join(f"{k} {v:.1f}" for k, v in p.items())

    print(f"scale {args.scale}: {rows:,} rows in {len(counts)} tables")
    print(f"  rows generated beforehand in   {generation:6.1f} s (one core, not timed below)")
    print(f"  COPY of ready rows (limit)     {copy_total:6.1f} s ({phases(copy_phases)})")
    print(
        f"  seeder end to end              {e2e_total:6.1f} s ({phases(e2e_phases)}), "
        f"{rows / e2e_total:,.0f} rows/s, {e2e_total / copy_total:.2f} x the COPY time"
    )
    print(f"  pgbench -i -s {scale} ({scale * PGBENCH_ROWS_PER_SCALE:,} rows) {pgbench:6.1f} s")


if __name__ == "__main__":
    main()
