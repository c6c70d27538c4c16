"""pgBackRest on the real stack: archiving across a switchover, a point-in-time restore that
lands exactly on its point, and restores the repository cannot serve refused with the
cluster untouched."""

from __future__ import annotations

from datetime import UTC, datetime

import psycopg
import pytest

from harness.backup.drill import drill
from harness.backup.repository import archive_now, repository_info, take_backup
from harness.backup.restore import restore
from harness.config.render import S3_REPO_PATH, STANZA
from harness.core.errors import BackupError
from harness.lab.presets import get_preset
from harness.lab.topology import S3_BUCKET
from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
PRESET = get_preset("fast")


def sentinel(stack: Stack, value: str | None = None) -> str:
    """Write (or read back) a row that a restore would remove."""
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        conn.execute("CREATE TABLE IF NOT EXISTS backup_sentinel (v text)")
        if value is not None:
            conn.execute("INSERT INTO backup_sentinel VALUES (%s)", (value,))
        row = conn.execute("SELECT max(v) FROM backup_sentinel").fetchone()
        return str(row[0]) if row else ""


def test_archiving_follows_the_leader_through_a_switchover(stack: Stack) -> None:
    take_backup(stack, "full")
    before = repository_info(stack).archive_max
    old = stack.leader()
    with stack.patroni() as patroni:
        candidate = next(m.name for m in patroni.cluster().members if m.is_sync_standby)
        patroni.switchover(old, candidate)
    stack.wait_ready(120)
    assert stack.leader() == candidate
    sentinel(stack, "after-switchover")
    archive_now(stack)  # the new leader switches WAL and pgBackRest waits for it to arrive
    after = repository_info(stack).archive_max
    assert after > before
    assert int(after[:8], 16) > int(before[:8], 16), "the new timeline's WAL is archived"


def test_point_in_time_restore_lands_exactly_on_the_point(stack: Stack) -> None:
    report = drill(stack, PRESET, "small", rows=200, say=print)
    assert report.passed, (report.mismatches, report.before_target_rows, report.after_target_rows)
    assert stack.status().healthy
    assert report.restore.rto > 0


def test_a_time_before_every_backup_is_refused_and_the_cluster_untouched(stack: Stack) -> None:
    mark = sentinel(stack, f"kept-{datetime.now(UTC).isoformat()}")
    with pytest.raises(BackupError, match="no backup ends before"):
        restore(stack, PRESET, datetime(2020, 1, 1, tzinfo=UTC), say=print)
    assert stack.status().healthy and sentinel(stack) == mark


def test_a_corrupted_backup_is_refused_and_the_cluster_untouched(stack: Stack) -> None:
    take_backup(stack, "full")
    mark = sentinel(stack, f"kept-{datetime.now(UTC).isoformat()}")
    newest = max(repository_info(stack).backups, key=lambda b: b.stopped).label
    with stack.lab.s3() as s3:  # one data file of the backup overwritten in the bucket
        prefix = f"{S3_REPO_PATH.strip('/')}/backup/{STANZA}/{newest}/pg_data/base/"
        s3.write(S3_BUCKET, s3.list(S3_BUCKET, prefix)[0].key, b"garbage\n")
    with pytest.raises(BackupError, match=f"backup {newest} is invalid"):
        restore(stack, PRESET, None, say=print)
    assert stack.status().healthy and sentinel(stack) == mark
    take_backup(stack, "full")  # a good newest backup again, for whoever comes next
