"""A restore: prove the repository can serve it (a backup old enough, `pgbackrest verify`
clean), and only then destroy the nodes' and etcd's volumes and let Patroni bootstrap the
first node from the backup; the replicas clone it as usual."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

import psycopg

from harness.backup.repository import pgbackrest, repository_info
from harness.clients.pgbackrest import Verification
from harness.config.render import RestoreTarget
from harness.core.errors import BackupError, CommandError, HarnessError, first_line
from harness.core.polling import poll
from harness.core.progress import Say
from harness.lab.presets import TimingPreset
from harness.lab.topology import ETCD_MEMBERS, NODES
from harness.stack.lifecycle import Stack

WRITE_DEADLINE = 120.0  # s to wait for the restored cluster to accept a write


@dataclass
class RestoreReport:
    target: str  # the requested time, or "latest"
    rto: float  # s from "cluster lost" (volumes gone) to "writes accepted again"
    phases: dict[str, float] = field(default_factory=dict)


def first_write(stack: Stack, timeout: float) -> None:
    """Poll until the rw endpoint commits a transaction that writes (assigns an xid)."""

    def write() -> str:
        try:
            with psycopg.connect(stack.lab.dsn("rw", connect_timeout=2), autocommit=True) as c:
                c.execute("SELECT txid_current()")
        except psycopg.Error as exc:
            return first_line(exc)
        return ""

    polled = poll(write, lambda error: not error, timeout=timeout, interval=0.2)
    if not polled.held:
        raise HarnessError(
            f"the restored cluster accepted no write: {polled.value}", "`make logs SERVICE=pg1`"
        )


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
        verification = Verification.parse(pgbackrest(stack, "verify", "--output=text", "--verbose"))
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
        first_write(stack, WRITE_DEADLINE)
    finally:
        stack.prepare(preset)  # a later fresh bootstrap must not restore again
    report.rto = time.monotonic() - lost
    return report


# -- the drill -----------------------------------------------------------------------------
