"""The repository: pgBackRest in a node, the stanza, backups, and what the repository holds."""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime

import psycopg

from harness.clients.pgbackrest import (
    BACKUP_TYPES,
    UNDECRYPTABLE,
    BackupSet,
    BackupType,
    RepositoryInfo,
    cipher_mismatch,
)
from harness.config.monitoring import BACKUP_OUTCOME_FILE, backup_outcome, write_textfile
from harness.config.render import STANZA, TEXTFILE_DIR
from harness.core.errors import BackupError, CommandError
from harness.lab.topology import BACKUP_VOLUME
from harness.stack.lifecycle import Stack


def pgbackrest(stack: Stack, *args: str, node: str | None = None) -> str:
    """pgBackRest as postgres in a node (the given one, else any running one)."""
    target = node or stack.any_node()
    try:
        return stack.execute(target, ["pgbackrest", f"--stanza={STANZA}", *args], "postgres")
    except CommandError as exc:
        if cipher_mismatch(exc.stderr):
            raise undecryptable(stack) from None
        exc.hint = exc.hint or "pgBackRest's message above says what it refused"
        raise


def undecryptable(stack: Stack) -> BackupError:
    """A repository written before encryption (a dev lab's older `backups` volume) or with
    another passphrase: pgBackRest can neither read nor archive into it."""
    volume = f"{stack.lab.project}_{BACKUP_VOLUME}"
    return BackupError(
        f"the backup repository in volume {volume} {UNDECRYPTABLE}: "
        "no backup and no WAL archiving until it is replaced",
        f"`harness down`, `docker volume rm {volume}` (its old backups go, the data stays), "
        "`harness up` (a new, encrypted repository); or restore the old PGBACKREST_CIPHER_PASS "
        "in .env",
    )


def ensure_stanza(stack: Stack) -> None:
    """The repository must know the cluster before the leader's WAL can be archived; a no-op
    once it does."""
    pgbackrest(stack, "stanza-create", node=stack.leader())


def repository_info(stack: Stack) -> RepositoryInfo:
    try:
        return RepositoryInfo.parse(pgbackrest(stack, "info", "--output=json"))
    except CommandError as exc:
        raise BackupError(f"cannot read the backup repository: {exc.message}", exc.hint) from exc


@dataclass(frozen=True)
class BackupReport:
    backup: BackupSet
    seconds: float
    node: str


def take_backup(stack: Stack, kind: BackupType = "full") -> BackupReport:
    """A backup on the leader; pgBackRest waits until the WAL it needs is archived."""
    if kind not in BACKUP_TYPES:
        raise BackupError(f"unknown backup type {kind!r}", f"choose {', '.join(BACKUP_TYPES)}")
    node = stack.leader()
    pgbackrest(stack, "stanza-create", node=node)
    started = time.monotonic()
    try:
        pgbackrest(stack, f"--type={kind}", "backup", node=node)
    except CommandError:
        report_outcome(stack, kind, failed=True)
        raise
    report_outcome(stack, kind, failed=False)
    seconds = time.monotonic() - started
    newest = max(repository_info(stack).backups, key=lambda b: b.stopped)
    return BackupReport(newest, seconds, node)


def report_outcome(stack: Stack, kind: str, *, failed: bool) -> None:
    """The backup's own outcome where node_exporter reads it, so a failure alerts at once."""
    text = backup_outcome(failed, kind, time.time())
    write_textfile(stack.lab.rendered_dir / TEXTFILE_DIR, BACKUP_OUTCOME_FILE, text)


def archive_now(stack: Stack) -> None:
    """Switch WAL and wait until the segment is archived (`pgbackrest check` does both)."""
    pgbackrest(stack, "check", node=stack.leader())


# WAL the leader wrote but has not archived: each such segment is marked .ready in
# pg_wal/archive_status until archive_command succeeds, and stays in pg_wal until then.
WAL_WAITING = """\
SELECT (SELECT count(*) FROM pg_ls_archive_statusdir() WHERE name LIKE '%.ready'),
       pg_size_bytes(current_setting('wal_segment_size')),
       CASE WHEN last_failed_time > coalesce(last_archived_time, '-infinity')
            THEN last_failed_wal || ' at ' || last_failed_time::text ELSE '' END
FROM pg_stat_archiver"""


@dataclass(frozen=True)
class WalWaiting:
    segments: int
    bytes: int
    failing: str  # the segment and time of the last failure, when none succeeded since

    def describe(self) -> str:
        text = f"WAL waiting in pg_wal: {self.segments} segments ({self.bytes / 2**20:,.0f} MiB)"
        return text + (f"; archiving failing (last: {self.failing})" if self.failing else "")


def wal_waiting(stack: Stack) -> WalWaiting | None:
    """How much WAL the leader holds for the archive: what a repository outage costs pg_wal.
    None when no leader answers (then nothing is archived either)."""
    try:
        with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
            row = conn.execute(WAL_WAITING).fetchone()
    except psycopg.OperationalError:
        return None
    assert row is not None
    return WalWaiting(int(row[0]), int(row[0]) * int(row[1]), str(row[2]))


def backups_table_rows(info: RepositoryInfo) -> Sequence[tuple[str, ...]]:
    def when(epoch: float) -> str:
        return datetime.fromtimestamp(epoch, UTC).strftime("%Y-%m-%d %H:%M:%S")

    return [
        (
            b.label,
            b.type,
            when(b.started),
            f"{b.stopped - b.started:.1f}",
            f"{b.database_bytes / 2**20:,.0f}",
            f"{b.repository_bytes / 2**20:,.0f}",
        )
        for b in sorted(info.backups, key=lambda b: b.started)
    ]
