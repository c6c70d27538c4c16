"""Backups, restores and the timed restore drill."""

from __future__ import annotations

import json
import os
import sys
from datetime import datetime
from typing import TYPE_CHECKING

import click

from harness.cli.app import App, pass_app
from harness.cli.params import Timestamp
from harness.clients.pgbackrest import BACKUP_TYPES
from harness.data.scales import SCALES

if TYPE_CHECKING:
    from harness.lab.presets import TimingPreset


def current_preset() -> TimingPreset:
    from harness.lab.presets import DEFAULT_PRESET, get_preset

    return get_preset(os.environ.get("GARDENLAB_PRESET", DEFAULT_PRESET))


@click.command("backup")
@click.option(
    "--type",
    "kind",
    type=click.Choice(list(BACKUP_TYPES)),
    default="full",
    show_default=True,
    help="full, diff (since the last full) or incr.",
)
@pass_app
def backup_command(app: App, kind: str) -> None:
    """Take a pgBackRest backup on the leader into the repository (the S3 bucket)."""
    from harness.backup.repository import take_backup
    from harness.cli.output import err

    with err.status(f"{kind} backup on the leader"):
        report = take_backup(app.stack(), kind)  # type: ignore[arg-type]
    b = report.backup
    err.print(
        f"backup {b.label} ({b.type}) on {report.node} in {report.seconds:.1f} s: "
        f"database {b.database_bytes / 2**20:,.0f} MiB, "
        f"{b.repository_bytes / 2**20:,.0f} MiB stored"
    )


@click.command("backups")
@click.option("--json", "as_json", is_flag=True, help="pgBackRest's own JSON (`info`).")
@pass_app
def backups_command(app: App, as_json: bool) -> None:
    """List the backups and the archived WAL range. Exit 1 when there is no usable backup."""
    from rich.table import Table

    from harness.backup.repository import (
        backups_table_rows,
        pgbackrest,
        repository_info,
        wal_waiting,
    )
    from harness.cli.output import out

    stack = app.stack()
    if as_json:
        click.echo(pgbackrest(stack, "info", "--output=json"))
        return
    info = repository_info(stack)
    table = Table(title=f"backups (repository: {info.status_message})", title_justify="left")
    for column in ("label", "type", "started (UTC)", "seconds", "database MiB", "stored MiB"):
        table.add_column(column)
    for row in backups_table_rows(info):
        table.add_row(*row)
    out.print(table)
    out.print(f"archived WAL: {info.archive_min or '-'} .. {info.archive_max or '-'}")
    waiting = wal_waiting(stack)
    out.print(waiting.describe() if waiting else "WAL waiting in pg_wal: unknown (no leader)")
    sys.exit(0 if info.status_code == 0 and info.backups else 1)


@click.command("restore")
@click.option(
    "--time",
    "target",
    type=Timestamp(),
    default=None,
    metavar="TIMESTAMP",
    help="Recover to this time, e.g. '2026-11-22 10:30:00+00' (default: the latest).",
)
@click.option("--yes", is_flag=True, help="Do not ask: the cluster's current data is replaced.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for readiness.")
@pass_app
def restore_command(app: App, target: datetime | None, yes: bool, timeout: float) -> None:
    """Replace the cluster with a backup's state: the latest, or a point in time.

    First checks that the repository can serve it (a backup ending before the time,
    `pgbackrest verify` clean) and refuses otherwise, leaving the cluster untouched. Then
    destroys the nodes' and etcd's volumes, bootstraps the first node from the backup
    (Patroni, recovering to the target from the archived WAL) and lets the replicas
    clone it. Prints the RTO: from "cluster lost" to "writes accepted again".
    """
    from harness.backup.restore import restore
    from harness.cli.output import ProgressView, err, out, status_table
    from harness.core.errors import ConfigError

    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError("restore replaces the cluster's data", "pass --yes to confirm")
        click.confirm("This replaces all data of the cluster. Go on?", abort=True)
    with ProgressView() as view:
        stack = app.stack(view.say)
        report = restore(stack, current_preset(), target, timeout=timeout, say=view.say)
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in report.phases.items())
    err.print(f"[green]restored[/] to {report.target}; RTO {report.rto:.1f} s ({phases})")
    out.print(status_table(stack.status()))


@click.command("drill")
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="small",
    show_default=True,
    help="What to seed when the lab holds no CRM data yet.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(),
    default=None,
    help="Where drill.json goes [artifacts/drill-TIME].",
)
@pass_app
def drill_command(app: App, scale: str, out_dir: str | None) -> None:
    """The timed restore drill: back up, write, mark a point, write more, destroy the
    cluster, restore to the point, and check the content is exactly the point's.

    Exit 1 when any table differs from its checksum at the point, when a row written
    before the point is missing or one written after it is there.
    """
    from pathlib import Path

    from harness.backup.drill import drill, drill_summary
    from harness.cli.output import ProgressView, out

    with ProgressView() as view:
        report = drill(app.stack(view.say), current_preset(), scale, say=view.say)
    directory = Path(out_dir) if out_dir else app.lab.artifacts("drill")
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "drill.json").write_text(json.dumps(report.to_json(), indent=1, default=str))
    out.print(drill_summary(report), highlight=False)
    out.print(f"  report: {directory / 'drill.json'}", highlight=False)
    sys.exit(0 if report.passed else 1)
