"""CSV import figures, printed, never asserted: rows/s through the import service against the
COPY rate of `harness seed` on the same machine, and the service's memory during the import.

Runs as its own Compose project (gardenlab-bench, ports +20000) and takes it down after.

    python -m benchmarks.csv_import [--rows 100000] [--rows 1000000] [--keep-up]
"""

from __future__ import annotations

import argparse
import tempfile
import threading
import time
from pathlib import Path

from benchmarks.startup import BENCH_SETTINGS, MIB, timed_up
from harness.clients.csvimport import CsvImportClient
from harness.data.crmdata import CrmData
from harness.data.leadcsv import write_lead_csv
from harness.data.scales import resolve_counts
from harness.data.seed import seed
from harness.lab.project import Lab
from harness.lab.topology import CSV_IMPORT
from harness.stack.lifecycle import Stack

AGENCY = 1


def peak_memory(stack: Stack, done: threading.Event, peaks: list[float]) -> None:
    """The import service's container memory, sampled until `done`."""
    name = stack.container(CSV_IMPORT).name
    while not done.is_set():
        used = stack.runtime.memory_used([name]).get(name)
        if used is not None:
            peaks.append(used / MIB)
        done.wait(0.5)


def copy_rate(stack: Stack, leads: int) -> float:
    """rows/s of `harness seed`'s COPY phase, with `leads` leads in the small scale."""
    report = seed(
        stack.lab.dsn("rw"),
        CrmData(42, resolve_counts("small", {"leads": leads})),
        reset=True,
        force=False,
    )
    return sum(report.rows.values()) / report.seconds["load"]


def timed_import(stack: Stack, rows: int, folder: Path, seed_value: int) -> None:
    made = write_lead_csv(folder / f"bench-{rows}.csv", rows, seed=seed_value)
    size = made.path.stat().st_size
    done = threading.Event()
    peaks: list[float] = []
    sampler = threading.Thread(target=peak_memory, args=(stack, done, peaks), daemon=True)
    with CsvImportClient(stack.lab.url(CSV_IMPORT), timeout=600) as client:
        sampler.start()
        idle = stack.runtime.memory_used([stack.container(CSV_IMPORT).name])
        start = time.monotonic()
        submitted = client.submit(made.path, AGENCY)
        accepted = time.monotonic() - start
        merging: list[float] = []

        def watch(summary: dict[str, object]) -> None:
            if summary["state"] != "staging" and not merging:
                merging.append(time.monotonic() - start)

        summary = client.wait(submitted["id"], 3600, watch)
        total = time.monotonic() - start
    done.set()
    sampler.join()
    staged = merging[0] if merging else total
    print(
        f"import of {rows:>9,} rows ({size / MIB:6.1f} MiB): {total:6.1f} s, "
        f"{rows / total:8,.0f} rows/s  (accepted after {accepted:4.1f} s; staged by "
        f"{staged:5.1f} s, merge {total - staged:5.1f} s), {summary['imported']:,} imported"
    )
    print(
        f"  service memory: {sum(idle.values()) / MIB:5.1f} MiB idle, "
        f"{max(peaks, default=0):5.1f} MiB at most during the import"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, action="append", help="rows per import; repeatable")
    parser.add_argument("--copy-leads", type=int, default=100_000)
    parser.add_argument("--keep-up", action="store_true", help="leave the bench project running")
    args = parser.parse_args()
    base = Lab.discover()
    stack = Stack(Lab(root=base.root, settings={**base.settings, **BENCH_SETTINGS}), say=print)
    try:
        stack.down(volumes=True)
        timed_up(stack)
        rate = copy_rate(stack, args.copy_leads)
        print(
            f"harness seed, COPY phase (small scale, {args.copy_leads:,} leads): {rate:,.0f} rows/s"
        )
        with tempfile.TemporaryDirectory() as folder:
            for i, rows in enumerate(args.rows or [100_000]):
                timed_import(stack, rows, Path(folder), 100 + i)
    finally:
        if not args.keep_up:
            stack.down(volumes=True)


if __name__ == "__main__":
    main()
