"""Backups with pgBackRest, restores into a fresh cluster, and the timed restore drill.

pgBackRest runs inside the database nodes (Debian's package, in the image): the leader
archives every WAL segment into the repository on the `backups` volume, and backups are
taken on the leader, so both follow the leader through a failover. A restore first proves
the repository can serve the request (a backup old enough, `pgbackrest verify` clean), and
only then destroys the nodes' and etcd's volumes and lets Patroni bootstrap the first node
from the backup; the replicas clone it as usual.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import psycopg

from harness.config.render import RestoreTarget
from harness.core.errors import BackupError, CommandError, HarnessError, first_line
from harness.data.crmdata import TABLES, CrmData, resolve_counts
from harness.data.seed import CHECKSUM, seed, seeded
from harness.lab.presets import TimingPreset
from harness.lab.project import ETCD_MEMBERS, NODES
from harness.stack.lifecycle import Stack

Say = Callable[[str], None]
BACKUP_TYPES = ("full", "diff", "incr")
WRITE_DEADLINE = 120.0  # s to wait for the restored cluster to accept a write


# -- talking to the repository -------------------------------------------------------------


@dataclass(frozen=True)
class BackupSet:
    label: str
    type: str
    started: float  # epoch seconds
    stopped: float
    database_bytes: int
    repository_bytes: int

    @classmethod
    def from_info(cls, raw: dict[str, Any]) -> BackupSet:
        return cls(
            raw["label"],
            raw["type"],
            float(raw["timestamp"]["start"]),
            float(raw["timestamp"]["stop"]),
            int(raw["info"]["size"]),
            int(raw["info"]["repository"]["delta"]),
        )


@dataclass(frozen=True)
class RepositoryInfo:
    """What `pgbackrest info` says of the stanza."""

    status_code: int  # 0 ok; pgBackRest's own codes otherwise
    status_message: str
    backups: tuple[BackupSet, ...]
    archive_min: str  # oldest and newest archived WAL segment, "" when none
    archive_max: str

    @classmethod
    def parse(cls, output: str) -> RepositoryInfo:
        stanzas = json.loads(output or "[]")
        if not stanzas:
            return cls(1, "no stanza", (), "", "")
        stanza = stanzas[0]
        archives = stanza.get("archive") or [{}]
        return cls(
            int(stanza["status"]["code"]),
            str(stanza["status"]["message"]),
            tuple(BackupSet.from_info(b) for b in stanza.get("backup", [])),
            str(archives[-1].get("min") or ""),
            str(archives[-1].get("max") or ""),
        )

    def backup_before(self, target: datetime) -> BackupSet:
        """The newest backup that ended before the target: recovery starts from it."""
        return max(
            (b for b in self.backups if b.stopped <= target.timestamp()), key=lambda b: b.stopped
        )

    def check_target(self, target: datetime | None, now: float | None = None) -> None:
        """Refuse a restore this repository cannot serve, before anything is touched."""
        if self.status_code != 0 or not self.backups:
            raise BackupError(
                f"the backup repository has no usable backup ({self.status_message})",
                "take one with `make backup`; `harness backups` lists what there is",
            )
        if target is None:
            return
        first = min(b.stopped for b in self.backups)
        if target.timestamp() < first:
            raise BackupError(
                f"no backup ends before {target.isoformat()}: the oldest ended at "
                f"{datetime.fromtimestamp(first, UTC).isoformat()}",
                "pick a later time; `harness backups` lists the backups",
            )
        if target.timestamp() > (now or time.time()):
            raise BackupError(
                f"{target.isoformat()} is in the future", "omit --time to restore the latest state"
            )


VERIFIED_BACKUP = re.compile(r"backup: (?P<label>\S+), status: (?P<status>\w+)")
VERIFIED_ARCHIVE = re.compile(
    r"archiveId: (?P<id>\S+), total WAL checked: (?P<checked>\d+), total valid WAL: (?P<valid>\d+)"
)


@dataclass(frozen=True)
class Verification:
    """`pgbackrest verify --output=text`: it exits 0 whatever it found, so read what it says."""

    backups: dict[str, str]  # label -> valid, invalid, ...
    archive_problems: list[str]

    @classmethod
    def parse(cls, text: str) -> Verification:
        backups = {m["label"]: m["status"] for m in VERIFIED_BACKUP.finditer(text)}
        archive = [
            f"archive {m['id']}: {int(m['checked']) - int(m['valid'])} of {m['checked']} WAL "
            "segments invalid"
            for m in VERIFIED_ARCHIVE.finditer(text)
            if m["checked"] != m["valid"]
        ]
        return cls(backups, archive)

    def problems(self, label: str) -> list[str]:
        """What stops a restore from this backup and the archive after it."""
        status = self.backups.get(label, "not verified")
        found = [] if status == "valid" else [f"backup {label} is {status}"]
        return found + self.archive_problems


def repository_info(stack: Stack) -> RepositoryInfo:
    try:
        return RepositoryInfo.parse(stack.pgbackrest("info", "--output=json"))
    except CommandError as exc:
        raise BackupError(f"cannot read the backup repository: {exc.message}", exc.hint) from exc


@dataclass(frozen=True)
class BackupReport:
    backup: BackupSet
    seconds: float
    node: str


def take_backup(stack: Stack, kind: str = "full") -> BackupReport:
    """A backup on the leader; pgBackRest waits until the WAL it needs is archived."""
    if kind not in BACKUP_TYPES:
        raise BackupError(f"unknown backup type {kind!r}", f"choose {', '.join(BACKUP_TYPES)}")
    node = stack.leader()
    stack.pgbackrest("stanza-create", node=node)  # a no-op once the repository knows the cluster
    started = time.monotonic()
    stack.pgbackrest(f"--type={kind}", "backup", node=node)
    seconds = time.monotonic() - started
    newest = max(repository_info(stack).backups, key=lambda b: b.stopped)
    return BackupReport(newest, seconds, node)


def archive_now(stack: Stack) -> None:
    """Switch WAL and wait until the segment is archived (`pgbackrest check` does both)."""
    stack.pgbackrest("check", node=stack.leader())


# -- restore -------------------------------------------------------------------------------


@dataclass
class RestoreReport:
    target: str  # the requested time, or "latest"
    rto: float  # s from "cluster lost" (volumes gone) to "writes accepted again"
    phases: dict[str, float] = field(default_factory=dict)


def first_write(stack: Stack, deadline: float) -> None:
    """Poll until the rw endpoint commits a transaction that writes (assigns an xid)."""
    last = ""
    while time.monotonic() < deadline:
        try:
            with psycopg.connect(stack.lab.dsn("rw", connect_timeout=2), autocommit=True) as c:
                c.execute("SELECT txid_current()")
                return
        except psycopg.Error as exc:
            last = first_line(exc)
        time.sleep(0.2)
    raise HarnessError(f"the restored cluster accepted no write: {last}", "`make logs SERVICE=pg1`")


def restore(
    stack: Stack,
    preset: TimingPreset,
    target: datetime | None,
    *,
    timeout: float = 600,
    say: Say = print,
) -> RestoreReport:
    """Replace the cluster with the backup's state at `target` (None: the latest)."""
    info = repository_info(stack)
    info.check_target(target)
    chosen = info.backup_before(target) if target else max(info.backups, key=lambda b: b.stopped)
    say(f"verifying backup {chosen.label} and the archive (pgbackrest verify)")
    try:
        verification = Verification.parse(stack.pgbackrest("verify", "--output=text", "--verbose"))
    except CommandError as exc:
        raise BackupError(
            f"cannot verify the backup repository: {exc.message}", "the cluster was not touched"
        ) from exc
    if problems := verification.problems(chosen.label):
        raise BackupError(
            f"the backup repository cannot serve this restore: {'; '.join(problems)}",
            "the cluster was not touched; take a new backup with `make backup`",
        )
    report = RestoreReport(target.isoformat() if target else "latest", 0.0)
    started = time.monotonic()
    say("destroying the cluster: containers, node and etcd volumes (the repository stays)")
    stack.down(volumes=False)
    stack.remove_volumes([*NODES, *ETCD_MEMBERS])
    lost = time.monotonic()  # the cluster is gone: the outage a real loss would start here
    report.phases["destroy"] = lost - started
    spec = RestoreTarget(target.isoformat(sep=" ") if target else None, chosen.label)
    say(f"bootstrapping from the backup, recovering to {report.target}")
    try:
        up = stack.up(
            preset, timeout, ensure_engine=lambda: None, on_build_line=lambda _: None, restore=spec
        )
        report.phases.update({f"up: {k}": v for k, v in up.phases.items()})
        first_write(stack, time.monotonic() + WRITE_DEADLINE)
    finally:
        stack.prepare(preset)  # a later fresh bootstrap must not restore again
    report.rto = time.monotonic() - lost
    return report


# -- the drill -----------------------------------------------------------------------------


def content_checksums(stack: Stack) -> dict[str, tuple[int, int]]:
    """Rows and a content checksum per CRM table, read on the primary."""
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        sums = {}
        for table in TABLES:
            row = conn.execute(CHECKSUM.format(table)).fetchone()
            sums[table] = (int(row[0]), int(row[1])) if row else (0, 0)
        return sums


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
            progress=lambda *_: None,
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
