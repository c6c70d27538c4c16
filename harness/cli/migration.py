"""The move off hosted Supabase: check, start, status, cutover, verify, finish."""

from __future__ import annotations

import json
import sys
from dataclasses import asdict
from pathlib import Path
from typing import TYPE_CHECKING, Any, NoReturn

import click

from harness.cli.app import App, pass_app
from harness.cli.params import ConnInfo, Duration, Size

if TYPE_CHECKING:
    from harness.migration.cutover import CutoverReport
    from harness.migration.endpoint import Endpoint
    from harness.migration.plan import Move
    from harness.migration.sync import DumpDdl
    from harness.stack.lifecycle import Stack


@click.group("migration")
@click.option(
    "--source",
    "source_dsn",
    type=ConnInfo(),
    envvar="GARDENLAB_MIGRATION_SOURCE",
    default=None,
    metavar="CONNINFO",
    help="The source as this machine reaches it (libpq string or URL). Default: the lab's "
    "source on 127.0.0.1:5440 ($GARDENLAB_MIGRATION_SOURCE).",
)
@click.pass_context
def migration(ctx: click.Context, source_dsn: str | None) -> None:
    """Move the CRM's data off its hosted Supabase database onto the cluster.

    Unlike `harness migrate`, which applies the CRM schema's migrations to the cluster,
    these commands carry the data of a running database, in stages:

    \b
      check    read-only preflight, each item with its fix
      start    the cluster's tables under the source's names, publication on the source,
               subscription on the cluster: initial copy, then streaming
      status   per-table copy state, lag, slot health, WAL the source holds
      cutover  pause the endpoint, wait until the cluster applied everything, carry the
               sequences, rename to the clean names, open the way back (the source
               follows the cluster), repoint the endpoint, resume
      rollback the same in reverse inside that window: nothing the cluster took is lost
      verify   counts and checksums of every table, source against cluster
      finish   drop both paths' subscriptions, slots and publications

    The application reaches the data through the endpoint on 127.0.0.1:6433 (a PgBouncer):
    before the cutover it points at the source, after it at the cluster's rw path.
    """
    ctx.obj = ctx.ensure_object(App)
    ctx.meta["migration.source"] = source_dsn


def the_move(app: App) -> Move:
    from harness.migration.plan import Move

    source = click.get_current_context().meta.get("migration.source")
    return Move.of_lab(app.lab, source)


VERDICTS = {"pass": "[green]pass[/]", "handled": "[cyan]handled[/]", "fail": "[bold red]FAIL[/]"}


@migration.command("check")
@click.option("--reset", is_flag=True, help="Judge as `start --reset` would (a filled target).")
@pass_app
def check_command(app: App, reset: bool) -> None:
    """Read-only preflight. Exit 1 when an item fails; nothing is changed on either side."""
    from rich.table import Table

    from harness.cli.output import out
    from harness.migration.check import check

    items = check(the_move(app), reset=reset)
    table = Table(title="migration preflight", title_justify="left")
    for column in ("item", "verdict", "detail", "fix"):
        table.add_column(column, overflow="fold")
    for item in items:
        table.add_row(item.name, VERDICTS[item.verdict], item.detail, item.fix)
    out.print(table)
    sys.exit(1 if any(i.verdict == "fail" for i in items) else 0)


@migration.command("start")
@click.option("--reset", is_flag=True, help="Empty the cluster's CRM tables before the copy.")
@click.option(
    "--copy-timeout",
    type=Duration(),
    default="1h",
    show_default=True,
    help="How long to follow the initial copy.",
)
@pass_app
def start_command(app: App, reset: bool, copy_timeout: float) -> None:
    """Preflight, then the initial copy with a progress bar, then streaming.

    Ctrl-C while preparing (before the subscription exists) undoes the preparation, so
    `start` can simply be run again. Ctrl-C while following the copy stops following, not
    the copy: the subscription goes on copying and streaming; `status` follows it, `finish`
    removes it.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

    from harness.cli.output import err, exit_interrupted
    from harness.migration.sync import start, wait_copied

    stack = app.stack()
    move = the_move(app)
    try:
        report = start(move, lab_ddl_dumper(stack), reset=reset, say=err.print)
    except KeyboardInterrupt:
        exit_interrupted(
            "interrupted while preparing: undone (no subscription, publication or marks; the "
            "cluster's tables back under their clean names; tables made for the move dropped). "
            "Kept: rows --reset deleted and REPLICA IDENTITY FULL on the source. Run `harness "
            "migration start` again to resume from the beginning"
        )
    for clean, legacy in report.renamed:
        err.print(f"cluster: {clean} is {legacy} until the cutover", highlight=False)
    if report.created:
        err.print(f"cluster: carried as the source defines them: {', '.join(report.created)}")
    if report.identity_full:
        err.print(f"source: REPLICA IDENTITY FULL on {', '.join(report.identity_full)}")
    try:
        with Progress(
            TextColumn("{task.description}"),
            BarColumn(),
            MofNCompleteColumn(),
            console=err,
            disable=not err.is_terminal,
        ) as bar:
            task = bar.add_task("initial copy (tables)", total=report.tables + 1)
            done = wait_copied(
                move,
                lambda s: bar.update(task, completed=sum(t.state in "sr" for t in s.tables)),
                copy_timeout,
            )
    except KeyboardInterrupt:
        exit_interrupted(
            "stopped following: the copy goes on; `harness migration status` follows it"
        )
    err.print(f"copied {len(done.tables)} tables; streaming, lag {done.lag_bytes} bytes")


def lab_ddl_dumper(stack: Stack) -> DumpDdl:
    """pg_dump --schema-only of exactly these tables, run in the lab's source container
    (its own pg_dump 17, over the local socket: no password on any command line)."""
    from harness.lab.topology import SOURCE_SERVICE

    def dump(tables: list[str]) -> str:
        patterns = [arg for t in tables for arg in ("-t", t)]
        command = ["pg_dump", "-U", "postgres", "-d", "postgres", "--schema-only", *patterns]
        return stack.execute(SOURCE_SERVICE, command, "postgres")

    return dump


@migration.command("status")
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@pass_app
def status_command(app: App, as_json: bool) -> None:
    """Per-table copy state, lag in bytes and seconds, slot health, WAL held for the slot,
    and DDL on the source that replication does not carry (a new column, a new table).

    Exit 1 when the source cannot be read, its slot is lost, or such DDL is found.
    """
    from rich.table import Table

    from harness.cli.output import out
    from harness.core.units import format_bytes
    from harness.migration.sync import STATES, status

    current = status(the_move(app))
    bad = bool(current.source_error) or current.wal_status == "lost" or bool(current.drift)
    if as_json:
        click.echo(json.dumps(asdict(current), indent=2))
        sys.exit(1 if bad else 0)
    table = Table(title="carried tables (cluster)", title_justify="left")
    table.add_column("table")
    table.add_column("state")
    for t in current.tables:
        table.add_row(t.table, STATES.get(t.state, t.state))
    out.print(table)
    if current.source_error:
        out.print(
            f"[bold red]source unreachable:[/] {current.source_error}; the cluster keeps "
            "what it applied; streaming resumes when the source is back"
        )
    else:
        out.print(
            f"lag {format_bytes(current.lag_bytes or 0)} ({current.lag_seconds or 0:.1f} s); "
            f"slot {'active' if current.slot_active else 'INACTIVE'}, wal_status "
            f"{current.wal_status}, WAL held {format_bytes(current.held_bytes or 0)}; "
            f"apply worker {'running' if current.worker else 'NOT running'}"
        )
    for drift in current.drift:
        out.print(
            f"[bold red]DDL on the source:[/] {drift}; apply it on the cluster too (under "
            "the same name) before the next change reaches it",
            highlight=False,
        )
    if not current.enabled:
        behind = current.reverse_lag_bytes
        out.print(
            "after the cutover: the cluster serves the endpoint; "
            + (
                f"rollback window open, the source {format_bytes(behind)} behind the cluster"
                if behind is not None
                else "no rollback window (the cluster's slot is gone)"
            )
        )
    sys.exit(1 if bad else 0)


def switch_options(f: Any) -> Any:
    """The options cutover and rollback share."""
    for option in reversed(
        [
            click.option(
                "--max-lag",
                type=Size(),
                default="16MB",
                show_default=True,
                help="Refuse while the side switched to is further behind than this.",
            ),
            click.option(
                "--pause-timeout",
                type=Duration(),
                default="10s",
                show_default=True,
                help="Longest wait for in-flight transactions at PAUSE (then resume, refuse).",
            ),
            click.option(
                "--catch-up-timeout",
                type=Duration(),
                default="30s",
                show_default=True,
                help="Longest wait for the other side to apply the last writes.",
            ),
            click.option(
                "--out",
                "out_path",
                type=click.Path(path_type=Path),
                help="Write the report as JSON.",
            ),
        ]
    ):
        f = option(f)
    return f


def lab_endpoint(app: App, move: Move) -> Endpoint:
    from harness.migration.endpoint import Endpoint
    from harness.provision.source import write_endpoint

    lab = app.lab
    return Endpoint.at(move.endpoint_admin_dsn, lambda host, port: write_endpoint(lab, host, port))


def interrupted(stage: str) -> NoReturn:
    from harness.cli.output import exit_interrupted

    exit_interrupted(
        f"interrupted: the {stage} was undone unless the endpoint had been repointed; the "
        "endpoint is resumed where it points (`harness migration status` shows which side "
        f"serves); run `harness migration {stage}` again to retry"
    )


def show_switch(report: CutoverReport, title: str, out_path: Path | None) -> None:
    from rich.table import Table

    from harness.cli.output import err, out

    table = Table(title=title, title_justify="left")
    table.add_column("step")
    table.add_column("seconds", justify="right")
    for step, seconds in report.steps.items():
        table.add_row(step, f"{seconds:.3f}")
    out.print(table)
    out.print(f"paused {report.paused_seconds:.3f} s; sequences set: {len(report.sequences)}")
    if out_path:
        out_path.parent.mkdir(parents=True, exist_ok=True)
        out_path.write_text(json.dumps(asdict(report), indent=2) + "\n")
    if report.orphans:
        listed = ", ".join(f"{k}: {v}" for k, v in report.orphans.items())
        err.print(f"[bold red]rows without their parent:[/] {listed}")
        sys.exit(1)


@migration.command("cutover")
@switch_options
@pass_app
def cutover_command(
    app: App, max_lag: int, pause_timeout: float, catch_up_timeout: float, out_path: Path | None
) -> None:
    """Switch the application to the cluster in seconds, every step timed.

    Pause the endpoint, wait until the cluster applied everything the source wrote,
    set every sequence past its column's maximum, stop applying, rename the legacy
    tables to the clean names on both sides (the old names stay as views), open the
    way back (a slot on the cluster the source subscribes to), repoint the endpoint at
    the cluster, resume; then look for rows whose foreign key has no parent.
    On an error or Ctrl-C the endpoint is resumed where it points, never left paused.
    """
    from harness.cli.output import err
    from harness.migration.cutover import cutover
    from harness.migration.slots import PatroniSlots

    move = the_move(app)
    try:
        report = cutover(
            move,
            lab_endpoint(app, move),
            max_lag=max_lag,
            pause_timeout=pause_timeout,
            catch_up_timeout=catch_up_timeout,
            slots=PatroniSlots(app.stack()),
            say=err.print,
        )
    except KeyboardInterrupt:
        interrupted("cutover")
    show_switch(report, "cutover steps", out_path)


@migration.command("rollback")
@switch_options
@pass_app
def rollback_command(
    app: App, max_lag: int, pause_timeout: float, catch_up_timeout: float, out_path: Path | None
) -> None:
    """Send the application back to the source, inside the rollback window.

    Pause the endpoint, wait until the source applied everything the cluster took since
    the cutover, set the source's sequences past them, stop the reverse apply, repoint
    the endpoint at the source, resume. Refused when no window is open or the cluster's
    slot was lost (a failover: see docs/migration.md).
    """
    from harness.cli.output import err
    from harness.migration.cutover import rollback

    move = the_move(app)
    try:
        report = rollback(
            move,
            lab_endpoint(app, move),
            max_lag=max_lag,
            pause_timeout=pause_timeout,
            catch_up_timeout=catch_up_timeout,
            say=err.print,
        )
    except KeyboardInterrupt:
        interrupted("rollback")
    show_switch(report, "rollback steps", out_path)


@migration.command("verify")
@pass_app
def verify_command(app: App) -> None:
    """Counts and content checksums of every carried table, source against cluster through
    the rename map. Exit 1 on a difference, naming the first differing keys.

    Integer-keyed tables are compared up to the largest id of the side the endpoint does
    not point at: the other side's newer rows are its own writes since the switch.
    """
    from rich.table import Table

    from harness.cli.output import err, out
    from harness.migration.verify import verify

    move = the_move(app)
    upstream = lab_endpoint(app, move).upstream()
    checks = verify(move, "source" if upstream == move.source_upstream else "cluster")
    table = Table(title="source against cluster", title_justify="left")
    for column in ("source", "cluster", "rows", "ids up to", "content"):
        table.add_column(column, justify="right" if column in ("rows", "ids up to") else "left")
    for c in checks:
        verdict = "[green]equal[/]"
        if not c.passed:
            detail = (
                f"missing columns {c.missing_columns}"
                if c.missing_columns
                else (f"first differing ids {c.first_keys}" if c.first_keys else "differs")
            )
            verdict = f"[bold red]DIFFERS[/] ({c.source[0]:,} vs {c.cluster[0]:,}; {detail})"
        bound = "all" if c.bound is None else f"{c.bound:,}"
        table.add_row(c.source_table, c.cluster_table, f"{c.source[0]:,}", bound, verdict)
    out.print(table)
    different = [c.source_table for c in checks if not c.passed]
    if different:
        err.print(f"[bold red]differ:[/] {', '.join(different)}")
        sys.exit(1)
    err.print(f"all {len(checks)} tables equal")


@migration.command("finish")
@pass_app
def finish_command(app: App) -> None:
    """Drop the subscription, the source's slot and publication: nothing left holding WAL."""
    from harness.cli.output import err
    from harness.migration.slots import PatroniSlots
    from harness.migration.sync import finish

    report = finish(the_move(app), PatroniSlots(app.stack()))
    err.print(f"dropped: {', '.join(report.dropped) or 'nothing (no move to finish)'}")
    for left in report.left:
        err.print(f"[yellow]left:[/] {left}", highlight=False)
    sys.exit(1 if report.left else 0)


@migration.command("drill")
@click.option(
    "--writers", type=click.IntRange(1, 16), default=4, show_default=True, help="Writer threads."
)
@click.option(
    "--window",
    type=Duration(),
    default="5s",
    show_default=True,
    help="Writes on the cluster before and after the failover in the rollback window.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False, path_type=Path),
    help="Where drill.json, summary.txt and timeline.png go [artifacts/migration-drill-TIME].",
)
@pass_app
def drill_command(app: App, writers: int, window: float, out_dir: Path | None) -> None:
    """The whole move rehearsed on the lab, the application writing all along.

    A fresh source (small scale: the lab's source is recreated), writers through the
    application endpoint the whole time (every attempt ack / fail / unknown), start, a
    Patroni failover while streaming, cutover, writes on the cluster, a failover in the
    rollback window, rollback, verify both ways, finish. Lab only: it empties the cluster's
    CRM tables (`start --reset`). Exit 1 unless every check holds: no acknowledged write
    lost forward or back, verify equal both ways, the way back alive after the failover,
    nothing left that holds WAL.
    """
    from harness.chaos.report import record_window
    from harness.cli.dashboard import report_panels
    from harness.cli.output import err, exit_interrupted, out
    from harness.migration.drill import DrillOptions, run_drill, write_report
    from harness.migration.slots import PatroniSlots
    from harness.provision.source import fresh_source

    if click.get_current_context().meta.get("migration.source"):
        raise click.UsageError(
            "the drill rehearses on the lab's own source (it recreates it); run it without --source"
        )
    stack = app.stack()
    move = the_move(app)
    directory = out_dir or app.lab.artifacts("migration-drill")
    try:
        result = run_drill(
            stack,
            move,
            lab_endpoint(app, move),
            PatroniSlots(stack),
            lab_ddl_dumper(stack),
            lambda: fresh_source(stack, "small", err.print),
            DrillOptions(writers=writers, window_seconds=window),
            say=err.print,
        )
    except KeyboardInterrupt:
        exit_interrupted(
            "interrupted: the writers are stopped and the endpoint resumed where it points; "
            "`harness migration status` shows the move, `harness migration finish` drops it, "
            "and the next drill starts afresh"
        )
    paths = write_report(result, directory)
    out.print(paths[1].read_text(), highlight=False, end="")
    err.print(f"report: {', '.join(str(p) for p in paths)}", highlight=False)
    report_panels(app, directory, *record_window(result.record, marks=None))
    sys.exit(0 if result.passed else 1)
