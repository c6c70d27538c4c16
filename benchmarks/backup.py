"""Backup and restore figures on the dev lab, printed, never asserted (`make bench-backup`).

1. a full backup of whatever the lab holds (seed `prod` first for the production figure);
2. WAL archived per minute while `harness load` runs 100 users for a minute;
3. the restore drill: RTO from "cluster lost" to "writes accepted", content checked.
Target for prod: restore <= 3 min, and PITR loses no transaction committed before the target.

    python -m benchmarks.backup [--load-seconds 60]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import psycopg

from harness.backup.drill import drill, drill_summary
from harness.backup.repository import take_backup
from harness.lab.presets import DEFAULT_PRESET, get_preset
from harness.lab.project import Lab
from harness.load.plan import LoadPlan
from harness.load.run import run_load
from harness.stack.lifecycle import Stack


def archived(stack: Stack) -> tuple[int, int]:
    """WAL segments archived by the leader so far, and the bytes of WAL written."""
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        row = conn.execute(
            "SELECT archived_count, pg_current_wal_lsn() - '0/0'::pg_lsn FROM pg_stat_archiver"
        ).fetchone()
    assert row is not None
    return int(row[0]), int(row[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--load-seconds", type=float, default=60.0)
    args = parser.parse_args()
    stack = Stack(Lab.discover())

    report = take_backup(stack, "full")
    b = report.backup
    print(
        f"full backup {b.label}: {report.seconds:.1f} s for {b.database_bytes / 2**20:,.0f} MiB "
        f"({b.repository_bytes / 2**20:,.0f} MiB stored, lz4)"
    )

    segments, wal = archived(stack)
    started = time.monotonic()
    with tempfile.TemporaryDirectory() as out:
        load = run_load(stack, LoadPlan(duration=args.load_seconds), Path(out), say=lambda _: None)
    minutes = (time.monotonic() - started) / 60
    segments_after, wal_after = archived(stack)
    steady = load.aggregate()
    print(
        f"under load ({steady.rps:.0f} requests/s, 100 users): "
        f"{(segments_after - segments) / minutes:.1f} WAL segments archived per minute, "
        f"{(wal_after - wal) / 2**20 / minutes:.1f} MiB of WAL written per minute"
    )

    result = drill(stack, get_preset(DEFAULT_PRESET), say=lambda _: None)
    print(drill_summary(result))


if __name__ == "__main__":
    main()
