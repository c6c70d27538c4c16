"""WAL archiving through a scenario that cuts the backup repository: while the fault holds,
the leader's WAL must wait in pg_wal (archiving never blocks a commit); once healed, the
archiver must push all of it, the segment closed during the outage included."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import psycopg

from harness.backup.repository import WalWaiting, repository_info, wal_waiting
from harness.core.polling import poll
from harness.core.progress import Say
from harness.stack.lifecycle import Stack

# The archiver retries a failed segment at once a few times, then on its next wake-up (up to
# 60 s); pgBackRest's own retries add a little.
DRAIN_TIMEOUT = 120.0
SETTLE = 5.0  # s after the WAL switch: a reachable repository archives a segment within it


@dataclass
class ArchiveWatch:
    """What waited in pg_wal at the heal, whether it drained after, and the archive's end."""

    stack: Stack
    say: Say
    closed: str = ""  # the segment switched out while the repository was cut
    held: WalWaiting | None = None
    drained: WalWaiting | None = None
    drain_seconds: float = 0.0
    archived_to: str = ""
    problems: list[str] = field(default_factory=list)

    def before_heal(self) -> None:
        """Close the segment being written, so it must wait for the repository."""
        with psycopg.connect(self.stack.lab.dsn("rw"), autocommit=True) as conn:
            row = conn.execute("SELECT pg_walfile_name(pg_switch_wal())").fetchone()
        self.closed = str(row[0]) if row else ""
        time.sleep(SETTLE)
        self.held = wal_waiting(self.stack)
        self.say(f"archive: {self.held.describe() if self.held else 'no leader answering'}")

    def after_recovery(self) -> None:
        polled = poll(
            lambda: wal_waiting(self.stack),
            lambda w: w is not None and w.segments == 0,
            timeout=DRAIN_TIMEOUT,
            interval=1.0,
        )
        self.drained, self.drain_seconds = polled.value, polled.elapsed
        self.archived_to = repository_info(self.stack).archive_max
        self.say(f"archive: drained in {self.drain_seconds:.0f} s, archived to {self.archived_to}")

    def failures(self) -> list[str]:
        return archive_failures(self.closed, self.held, self.drained, self.archived_to)


def archive_failures(
    closed: str, held: WalWaiting | None, drained: WalWaiting | None, archived_to: str
) -> list[str]:
    """What differs from "WAL waited during the outage, then all of it reached the archive"."""
    found = []
    if held is None or held.segments == 0:
        found.append("no WAL waited in pg_wal during the fault: it never reached the archive")
    if drained is None or drained.segments:
        left = drained.describe() if drained else "no leader answering"
        found.append(f"WAL did not drain within {DRAIN_TIMEOUT:.0f} s of the heal ({left})")
    # segment names of one timeline sort in WAL order; a later timeline sorts after
    if not closed or archived_to < closed:
        found.append(f"segment {closed or '?'} closed during the fault is not archived")
    return found
