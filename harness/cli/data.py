"""The CRM's data: migrate, seed, verify."""

from __future__ import annotations

import click

from harness.cli.app import App, pass_app
from harness.cli.params import TableCount
from harness.data.scales import SCALES


@click.command("migrate")
@pass_app
def migrate_command(app: App) -> None:
    """Apply the CRM schema's pending migrations (`up` does this too)."""
    from harness.cli.output import err
    from harness.data.schema import migrate

    applied = migrate(app.lab)
    err.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


@click.command("seed")
@click.option(
    "--scale",
    type=click.Choice(list(SCALES)),
    default="small",
    show_default=True,
    help="small: seconds, for CI; prod: 1M leads, 100K clients and the rest.",
)
@click.option(
    "--seed",
    "seed_value",
    default=42,
    show_default=True,
    help="The same seed gives the same rows, byte for byte.",
)
@click.option(
    "--count",
    "counts",
    multiple=True,
    type=TableCount(),
    metavar="TABLE=N",
    help="Override one table's row count; repeatable.",
)
@click.option("--reset", is_flag=True, help="Replace data seeded with other parameters.")
@click.option("--force", is_flag=True, help="Seed a target that is not the lab.")
@click.option("--dsn", default=None, help="Target connection string (default: the lab's rw).")
@pass_app
def seed_command(
    app: App,
    scale: str,
    seed_value: int,
    counts: tuple[tuple[str, int], ...],
    reset: bool,
    force: bool,
    dsn: str | None,
) -> None:
    """Load realistic, deterministic CRM data with COPY. Running it again changes nothing."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    from harness.cli.output import err
    from harness.data.crmdata import CrmData
    from harness.data.scales import resolve_counts
    from harness.data.seed import seed

    data = CrmData(seed_value, resolve_counts(scale, dict(counts)))
    target = dsn or app.lab.dsn("rw")
    total = sum(data.counts.values())
    with Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.speed:>9,.0f} rows/s"),
        TimeElapsedColumn(),
        console=err,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task(f"seeding {scale} (seed {seed_value})", total=total)
        report = seed(
            target,
            data,
            reset=reset,
            force=force,
            progress=lambda table, rows: bar.advance(task, rows),
            say=err.print,
        )
    if report.outcome == "unchanged":
        err.print(f"already seeded: {scale}, seed {seed_value}; nothing to do")
        return
    seconds = sum(report.seconds.values())
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in report.seconds.items())
    err.print(f"seeded {total:,} rows in {seconds:.1f} s ({total / seconds:,.0f} rows/s; {phases})")


@click.command("verify")
@pass_app
def verify_command(app: App) -> None:
    """Row counts and content checksums per table on every node. Exit 1 on any difference."""
    from rich.table import Table

    from harness.cli.output import err, out
    from harness.core.errors import HarnessError
    from harness.data.verify import verify

    stack = app.stack()
    with stack.patroni() as patroni:
        cluster = patroni.cluster()
    if cluster.leader is None:
        raise HarnessError("no leader to compare against", "`make status` shows the cluster")
    nodes = [m.name for m in cluster.members]
    checks = verify(stack.node_sql, cluster.leader.name, nodes=nodes)
    table = Table(title=f"content per node (primary: {cluster.leader.name})", title_justify="left")
    table.add_column("table")
    for node in nodes:
        table.add_column(f"{node} rows", justify="right")
    table.add_column("checksums")
    for check in checks:
        sums = {s for _, s in check.per_node.values()}
        table.add_row(
            check.table,
            *(f"{check.per_node[n][0]:,}" for n in nodes),
            "[green]equal[/]" if check.passed else f"[bold red]DIFFER ({len(sums)})[/]",
        )
    out.print(table)
    different = [c.table for c in checks if not c.passed]
    if different:
        raise HarnessError(f"nodes differ on: {', '.join(different)}", "a replica lags or diverged")
    err.print(f"all {len(checks)} tables equal on {', '.join(nodes)}")
