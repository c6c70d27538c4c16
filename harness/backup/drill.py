"""The timed restore drill: back up, write, mark a point, write more, lose the cluster,
restore to the point, and check the content is exactly the point's."""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import psycopg

from harness.backup.repository import BackupReport, archive_now, take_backup
from harness.backup.restore import RestoreReport, restore
from harness.core.errors import HarnessError
from harness.core.progress import Say
from harness.data.crmdata import CrmData
from harness.data.scales import TABLES, resolve_counts
from harness.data.seed import seed, seeded
from harness.data.verify import checksums_sql
from harness.lab.presets import TimingPreset
from harness.stack.lifecycle import Stack


def content_checksums(stack: Stack) -> dict[str, tuple[int, int]]:
    """Rows and a content checksum per CRM table, read on the primary."""
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        rows = conn.execute(checksums_sql(TABLES)).fetchall()
    return {str(table): (int(count), int(checksum)) for table, count, checksum in rows}


def write_batch(stack: Stack, marker: str, rows: int) -> None:
    """New leads and an update: what happens on a CRM between two instants."""
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn, conn.transaction():
        conn.execute(
            "INSERT INTO leads (agency_id, full_name, status, source, info) "
            "SELECT 1, 'Drill ' || %s || ' ' || g, 'new', %s, '{}' FROM generate_series(1, %s) g",
            (marker, marker, rows),
        )
        conn.execute(
            "UPDATE clients SET address = %s WHERE id IN (SELECT id FROM clients LIMIT %s)",
            (f"moved in {marker}", rows),
        )


def marker_rows(stack: Stack, marker: str) -> int:
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        row = conn.execute("SELECT count(*) FROM leads WHERE source = %s", (marker,)).fetchone()
        return int(row[0]) if row else 0


@dataclass
class DrillReport:
    backup: BackupReport
    target: str
    restore: RestoreReport
    expected: dict[str, tuple[int, int]]
    found: dict[str, tuple[int, int]]
    before_target_rows: int  # written after the backup, before the target: must be there
    after_target_rows: int  # written after the target: must not be

    @property
    def mismatches(self) -> list[str]:
        return [t for t in self.expected if self.found.get(t) != self.expected[t]]

    @property
    def passed(self) -> bool:
        return not self.mismatches and self.before_target_rows > 0 and self.after_target_rows == 0

    def to_json(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "target": self.target,
            "backup": {**self.backup.backup.__dict__, "seconds": self.backup.seconds},
            "rto_seconds": self.restore.rto,
            "phases": self.restore.phases,
            "mismatches": self.mismatches,
            "before_target_rows": self.before_target_rows,
            "after_target_rows": self.after_target_rows,
            "expected": self.expected,
            "found": self.found,
        }


def drill(
    stack: Stack, preset: TimingPreset, scale: str = "small", rows: int = 500, say: Say = print
) -> DrillReport:
    """Seed (at `scale`, unless data is there), back up, write, mark a point, write more, lose
    the cluster, restore to the point, and check the content is exactly that of the point."""
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        has_data = seeded(conn)
    if not has_data:
        say(f"drill: seeding {scale}")
        seed(
            stack.lab.dsn("rw"),
            CrmData(42, resolve_counts(scale)),
            reset=False,
            force=False,
            say=say,
        )
    say("drill: full backup")
    backup = take_backup(stack, "full")
    say(f"drill: backup {backup.backup.label} in {backup.seconds:.1f} s; writing batch A")
    before, after = f"drill-{time.time():.0f}-a", f"drill-{time.time():.0f}-b"
    write_batch(stack, before, rows)
    expected = content_checksums(stack)
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        row = conn.execute("SELECT clock_timestamp()").fetchone()
    assert row is not None
    target: datetime = row[0]
    time.sleep(1.0)  # batch B commits strictly after the target
    say(f"drill: target {target.isoformat()}; writing batch B after it")
    write_batch(stack, after, rows)
    if content_checksums(stack) == expected:
        raise HarnessError("batch B changed nothing: the drill could not tell the points apart")
    archive_now(stack)
    result = restore(stack, preset, target, say=say)
    return DrillReport(
        backup,
        target.isoformat(),
        result,
        expected,
        content_checksums(stack),
        marker_rows(stack, before),
        marker_rows(stack, after),
    )


def drill_summary(report: DrillReport) -> str:
    b = report.backup.backup
    lines = [
        f"restore drill: {'PASSED' if report.passed else 'FAILED'}",
        f"  backup {b.label}: {report.backup.seconds:.1f} s, database "
        f"{b.database_bytes / 2**20:,.0f} MiB, {b.repository_bytes / 2**20:,.0f} MiB stored",
        f"  restored to {report.target}",
        f"  RTO (cluster lost -> writes accepted): {report.restore.rto:.1f} s",
        "    " + ", ".join(f"{k} {v:.1f} s" for k, v in report.restore.phases.items()),
        f"  content: {len(report.expected) - len(report.mismatches)}/{len(report.expected)} "
        f"tables equal to the target's checksums",
        f"  written before the target: {report.before_target_rows} present; "
        f"after it: {report.after_target_rows} present (must be 0)",
    ]
    lines += [
        f"  MISMATCH: {t}: expected {report.expected[t]}, found {report.found.get(t)}"
        for t in report.mismatches
    ]
    return "\n".join(lines)
