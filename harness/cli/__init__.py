"""`harness` (also `python -m harness`): bring the lab up, look at it, take it down.

Errors the harness expects print as one message plus a hint and exit non-zero;
usage errors exit 2, a status that is not healthy exits 1.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
from pathlib import Path
from typing import Any, NoReturn

import click
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.status import Status
from rich.table import Table

from harness.backup.repository import (
    BACKUP_TYPES,
    backups_table_rows,
    drill,
    drill_summary,
    repository_info,
    restore,
    take_backup,
)
from harness.chaos.catalog import CATALOG
from harness.chaos.runner import run as run_scenario
from harness.chaos.runner import summary, write_report
from harness.config.bundle import lab_package_versions, plan_bundle, write_bundle
from harness.config.inventory import load_inventory
from harness.core.errors import ConfigError, HarnessError
from harness.data.crmdata import SCALES, CrmData, resolve_counts
from harness.data.seed import migrate, seed, verify
from harness.faults.controller import Fault, Faults, parse_duration_ms, parse_rate_kbps
from harness.lab.presets import DEFAULT_PRESET, PRESETS, TimingPreset, get_preset
from harness.lab.project import NODES, SUPABASE, Lab
from harness.lab.secrets import read_env_file
from harness.load.report import Limit, merge_limits, parse_limit
from harness.load.run import (
    DEFAULT_LIMITS,
    WRITE_ENDPOINTS,
    LoadPlan,
    parse_duration,
    parse_wait,
    run_load,
    run_load_chaos,
)
from harness.load.run import summary as load_summary
from harness.promotion.gate import gate as run_gate
from harness.promotion.rehearse import rehearse
from harness.stack.engine import Engine
from harness.stack.lifecycle import Stack, StackStatus
from harness.stack.readiness import Results
from harness.stack.supabase import client_settings, settings_json, start_supabase, supabase_states
from loadtests.mix import REQUEST_NAMES

# Off a terminal (CI logs, pipes) rich would wrap at 80 columns; tables need more.
out = Console(width=None if Console().is_terminal else 120)
err = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 120)

ENDPOINT_HOSTS = {"rw": ("haproxy", 5000), "ro": ("haproxy", 5001), "pooler": ("pgbouncer", 6432)}
BUILD_STEP = re.compile(r"^(Step \d+/\d+ : (FROM|RUN)|Successfully tagged)")


def fail(exc: HarnessError) -> NoReturn:
    err.print(f"[bold red]error:[/] {exc.message}", highlight=False, markup=True)
    if exc.hint:
        err.print(f"  [yellow]hint:[/] {exc.hint}", highlight=False)
    sys.exit(exc.exit_code)


class ProgressView:
    """Shows long steps as they go: a spinner on a terminal, a line per milestone elsewhere."""

    def __init__(self) -> None:
        self.tty = err.is_terminal
        self.status: Status | None = err.status("") if self.tty else None
        self.passed: set[str] = set()

    def __enter__(self) -> ProgressView:
        if self.status:
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status:
            self.status.stop()

    def say(self, text: str) -> None:
        err.print(text, highlight=False)

    def build_line(self, line: str) -> None:
        if self.status:
            self.status.update(f"building images: {line[:90]}")
        elif BUILD_STEP.match(line):
            err.print(f"  build: {line}", highlight=False, markup=False)

    def readiness_round(self, results: Results, elapsed: float) -> None:
        for check, probe in results:
            if probe.ok and check.name not in self.passed:
                self.passed.add(check.name)
                err.print(f"  [green]ok[/] {check.name} ({elapsed:.1f} s): {probe.detail}")
        pending = [(c, p) for c, p in results if not p.ok]
        if self.status and pending:
            check, probe = pending[0]
            self.status.update(f"waiting {elapsed:.0f} s for {check.name}: {probe.detail[:80]}")


def status_table(status: StackStatus) -> Table:
    cluster = status.cluster
    leader = cluster.leader.name if cluster and cluster.leader else "none"
    health = "[green]healthy[/]" if status.healthy else "[bold red]NOT HEALTHY[/]"
    table = Table(title=f"gardenlab: {health}  leader: {leader}", title_justify="left")
    for column in ("member", "role", "state", "TL", "lag (bytes)", "rw", "ro", "container"):
        table.add_column(column)
    for node in NODES:
        m = cluster.member(node) if cluster else None
        table.add_row(
            node,
            m.role if m else "-",
            m.state if m else "-",
            str(m.timeline) if m and m.timeline is not None else "-",
            str(m.lag) if m and m.lag is not None else "-",
            status.backend("rw", node),
            status.backend("ro", node),
            status.containers.get(node, "absent"),
        )
    return table


def status_json(status: StackStatus) -> dict[str, Any]:
    return {
        "healthy": status.healthy,
        "containers": status.containers,
        "cluster": asdict(status.cluster) if status.cluster else None,
        "cluster_error": status.cluster_error,
        "backends": [asdict(b) for b in status.backends],
    }


def make_stack(say: Callable[[str], None] = err.print) -> Stack:
    return Stack(Lab.discover(), say=say)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """gardenlab: a three-node Patroni cluster (etcd, HAProxy, PgBouncer) on this machine.

    Endpoints on 127.0.0.1: 5000 read-write (leader), 5001 read-only (replicas),
    6432 PgBouncer, 7000 HAProxy stats, 8008-8010 Patroni REST of pg1-pg3.
    Secrets live in .env at the project root, generated on first `up`.
    """


@cli.command()
@click.option(
    "--preset",
    type=click.Choice(list(PRESETS)),
    default=lambda: os.environ.get("GARDENLAB_PRESET", DEFAULT_PRESET),
    show_default=f"$GARDENLAB_PRESET or {DEFAULT_PRESET}",
    help="Timing preset for Patroni and HAProxy: "
    + "; ".join(f"{p.name}: {p.description}" for p in PRESETS.values()),
)
@click.option("--timeout", default=180.0, show_default=True, help="Seconds to wait for readiness.")
@click.option(
    "--supabase",
    is_flag=True,
    help="Also start the Supabase services (auth, rest, realtime, storage, meta, "
    "studio, kong) that can run here; name those that cannot.",
)
def up(preset: str, timeout: float, supabase: bool) -> None:
    """Build and start the stack, then wait until it is proven healthy.

    Installs the Docker engine and Compose plugin first when missing (root on
    Debian). Running it again on a healthy stack changes nothing. Ctrl-C stops
    the half-started stack (data volumes are kept) so the next `up` starts clean.
    """
    chosen = get_preset(preset)
    with ProgressView() as view:
        stack = make_stack(view.say)
        try:
            report = stack.up(
                chosen,
                timeout,
                ensure_engine=Engine(say=view.say).ensure,
                on_build_line=view.build_line,
                on_round=view.readiness_round,
                profiles=[SUPABASE] if supabase else [],
            )
            started = start_supabase(stack, view.say) if supabase else None
        except KeyboardInterrupt:
            view.say("interrupted: stopping the stack (data volumes kept) so `up` starts clean")
            try:
                stack.down(volumes=False)
            except HarnessError as exc:
                view.say(f"could not stop it: {exc.message}; run `harness down`")
            sys.exit(130)
    phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in report.phases.items())
    err.print(
        f"[green]ready[/] in {sum(report.phases.values()):.1f} s ({phases}); preset {chosen.name}"
    )
    if report.preset_changes:
        err.print(f"patched Patroni's live configuration: {report.preset_changes}")
    if report.restarted:
        err.print(f"restarted for pending settings: {', '.join(report.restarted)}")
    if report.migrations:
        err.print(f"applied migrations: {', '.join(report.migrations)}")
    if started is not None:
        err.print(f"Supabase: started {', '.join(started.started) or 'nothing'}")
        for service, why in started.missing.items():
            err.print(f"  [yellow]not started[/] {service}: {why}", highlight=False)
    out.print(status_table(stack.status()))


@cli.command()
@click.option("--volumes", "-v", is_flag=True, help="Also delete the data volumes (all data).")
def down(volumes: bool) -> None:
    """Stop and remove the stack's containers and network (and volumes with --volumes).

    Works from any state, including leftovers of an earlier run or a missing .env.
    """
    removed = make_stack().down(volumes=volumes)
    counts = ", ".join(f"{len(names)} {kind}" for kind, names in removed.items())
    err.print(f"removed {counts}" if any(removed.values()) else "nothing to remove")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--supabase", is_flag=True, help="Also the Supabase services, URLs and API keys (secrets!)."
)
def status(as_json: bool, supabase: bool) -> None:
    """Show members, roles, timelines, lag and HAProxy's routing. Exit 1 unless healthy."""
    stack = make_stack()
    current = stack.status()
    if supabase:
        if as_json:
            click.echo(settings_json(stack.lab, stack))
        else:
            states = supabase_states(stack)
            out.print(
                "Supabase services: "
                + (
                    ", ".join(f"{s} {st}" for s, st in sorted(states.items()))
                    or "none (`harness up --supabase`)"
                )
            )
            for key, value in client_settings(stack.lab).items():
                out.print(f"  {key}: {value}", highlight=False, soft_wrap=True)
        sys.exit(0 if current.healthy else 1)
    if as_json:
        click.echo(json.dumps(status_json(current), indent=2))
    else:
        out.print(status_table(current))
        others = {s: st for s, st in current.containers.items() if s not in NODES}
        listed = ", ".join(f"{s} {st}" for s, st in sorted(others.items()))
        out.print(f"services: {listed or 'none'}")
        if not current.containers:
            out.print("[yellow]the lab is down:[/] `make dev-up` starts it")
        elif current.cluster_error:
            out.print(f"[yellow]Patroni:[/] {current.cluster_error}")
    sys.exit(0 if current.healthy else 1)


@cli.command()
@click.argument("services", nargs=-1)
@click.option("--follow", "-f", is_flag=True, help="Keep streaming new lines (Ctrl-C stops).")
@click.option("--tail", default="100", show_default=True, help="Lines per service, or 'all'.")
def logs(services: tuple[str, ...], follow: bool, tail: str) -> None:
    """Print the logs of the stack's services (all of them by default)."""
    compose = make_stack().compose([SUPABASE]).compose
    if follow:
        try:
            for _source, line in compose.logs(list(services), tail=tail, follow=True, stream=True):
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
    else:
        click.echo(compose.logs(list(services), tail=tail))


@cli.command(context_settings={"ignore_unknown_options": True})
@click.argument("endpoint", type=click.Choice(list(ENDPOINT_HOSTS)), default="rw")
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED)
def psql(endpoint: str, psql_args: tuple[str, ...]) -> None:
    """Open psql on an endpoint: rw (leader), ro (replicas) or pooler (PgBouncer).

    Runs the cluster's own psql 17 inside a running node, so nothing needs
    installing here. Extra arguments go to psql, e.g. `harness psql ro -c 'select 1'`.
    """
    stack = make_stack()
    lab = stack.lab
    running = sorted(stack.running_services() & set(NODES))
    if not running:
        fail(HarnessError("no database node is running", "start the lab with `make dev-up`"))
    host, port = ENDPOINT_HOSTS[endpoint]
    container = stack.container(running[0]).name
    tty = ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
    command = [
        "docker",
        "exec",
        "-i",
        *tty,
        "-e",
        "PGPASSWORD",
        container,
        "psql",
        "-h",
        host,
        "-p",
        str(port),
        "-U",
        "postgres",
        "postgres",
        *psql_args,
    ]
    env = {**os.environ, "PGPASSWORD": lab.secret("POSTGRES_PASSWORD")}
    sys.exit(subprocess.call(command, env=env))


@cli.command("migrate")
def migrate_command() -> None:
    """Apply the CRM schema's pending migrations (`up` does this too)."""
    applied = migrate(make_stack().lab)
    err.print(f"applied: {', '.join(applied)}" if applied else "schema is up to date")


def parse_counts(values: tuple[str, ...]) -> dict[str, int]:
    counts = {}
    for value in values:
        table, _, number = value.partition("=")
        if not number.lstrip("-").isdigit():
            raise ConfigError(f"--count {value!r} is not TABLE=N", "e.g. --count leads=200000")
        counts[table] = int(number)
    return counts


@cli.command("seed")
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
    metavar="TABLE=N",
    help="Override one table's row count; repeatable.",
)
@click.option("--reset", is_flag=True, help="Replace data seeded with other parameters.")
@click.option("--force", is_flag=True, help="Seed a target that is not the lab.")
@click.option("--dsn", default=None, help="Target connection string (default: the lab's rw).")
def seed_command(
    scale: str,
    seed_value: int,
    counts: tuple[str, ...],
    reset: bool,
    force: bool,
    dsn: str | None,
) -> None:
    """Load realistic, deterministic CRM data with COPY. Running it again changes nothing."""
    data = CrmData(seed_value, resolve_counts(scale, parse_counts(counts)))
    target = dsn or make_stack().lab.dsn("rw")
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


@cli.command("verify")
def verify_command() -> None:
    """Row counts and content checksums per table on every node. Exit 1 on any difference."""
    stack = make_stack()
    with stack.patroni() as patroni:
        leader = patroni.cluster().leader
    if leader is None:
        fail(HarnessError("no leader to compare against", "`make status` shows the cluster"))
    checks = verify(stack.node_sql, leader.name)
    table = Table(title=f"content per node (primary: {leader.name})", title_justify="left")
    table.add_column("table")
    for node in NODES:
        table.add_column(f"{node} rows", justify="right")
    table.add_column("checksums")
    for check in checks:
        sums = {s for _, s in check.per_node.values()}
        table.add_row(
            check.table,
            *(f"{check.per_node[n][0]:,}" for n in NODES),
            "[green]equal[/]" if check.consistent else f"[bold red]DIFFER ({len(sums)})[/]",
        )
    out.print(table)
    different = [c.table for c in checks if not c.consistent]
    if different:
        fail(HarnessError(f"nodes differ on: {', '.join(different)}", "a replica lags or diverged"))
    err.print(f"all {len(checks)} tables equal on {', '.join(NODES)}")


@cli.group()
def chaos() -> None:
    """Run chaos scenarios under write load and check the invariants afterwards."""


@chaos.command("list")
def chaos_list() -> None:
    """The scenario catalog, with what each one promises."""
    for scenario in CATALOG.values():
        budget = scenario.expect.max_write_gap
        out.print(
            f"[bold]{scenario.name}[/] (write outage budget: "
            f"{'none' if budget is None else f'{budget:g} s'})"
        )
        out.print(f"  {scenario.story}", highlight=False)


@chaos.command("run")
@click.argument("name")
@click.option("--writers", default=4, show_default=True, help="Concurrent writer clients.")
@click.option(
    "--out",
    "out_dir",
    type=click.Path(),
    default=None,
    help="Where result.json and timeline.png go [artifacts/NAME-TIME].",
)
def chaos_run(name: str, writers: int, out_dir: str | None) -> None:
    """Run one scenario; exit 1 when an invariant or a budget fails."""
    if name not in CATALOG:
        raise ConfigError(f"unknown scenario {name!r}", "`harness chaos list` shows the catalog")
    stack = make_stack()
    scenario = CATALOG[name]
    result = run_scenario(stack, scenario, writers=writers, say=err.print)
    directory = (
        Path(out_dir)
        if out_dir
        else (stack.lab.root / "artifacts" / f"{name}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    json_path, png_path = write_report(result, directory)
    out.print(summary(result, scenario), highlight=False)
    out.print(f"  report: {json_path}, {png_path}", highlight=False)
    sys.exit(0 if result.passed else 1)


threshold_option = click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    metavar="[REQUEST:]METRIC=VALUE",
    help="Fail when a steady-state metric reaches it; repeatable. Metrics p50, p95, p99 (ms) "
    "and errors (ratio). Defaults: p95=100, errors=0.001 (0.1 %). Per request type: "
    "search_leads:p99=50.",
)


def limits_from(thresholds: tuple[str, ...]) -> tuple[Limit, ...]:
    """The default thresholds with the command line's in place of their kind."""
    return tuple(merge_limits(DEFAULT_LIMITS, [parse_limit(t, REQUEST_NAMES) for t in thresholds]))


@cli.command("load")
@click.option("--users", "-u", default=100, show_default=True, help="Concurrent Locust users.")
@click.option(
    "--spawn-rate",
    "-r",
    default=10.0,
    show_default=True,
    help="Users started per second (the ramp lasts users / rate).",
)
@click.option(
    "--duration",
    "-t",
    default="3m",
    show_default=True,
    help="The whole run, ramp included: 90, 90s, 3m, 1h. Ignored with --scenario, "
    "which runs ramp + 20 s + the scenario + 15 s.",
)
@click.option(
    "--via",
    type=click.Choice(list(WRITE_ENDPOINTS)),
    default="haproxy",
    show_default=True,
    help="The primary path: HAProxy's rw port or PgBouncer. "
    "Stale-tolerant reads always use HAProxy's ro port.",
)
@click.option(
    "--processes",
    "-p",
    default=1,
    show_default=True,
    help="Load-generating processes (Locust's --processes: a master and N workers).",
)
@click.option(
    "--pool-size", default=40, show_default=True, help="Connections per endpoint and load process."
)
@click.option(
    "--wait",
    default="0.2,1.0",
    show_default=True,
    help="Think time between a user's requests: MIN,MAX seconds (0,0: flat out).",
)
@threshold_option
@click.option(
    "--scenario",
    default=None,
    help="Run this chaos scenario under the load (`harness chaos list`).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(),
    default=None,
    help="Where the reports go [artifacts/load/NAME-TIME].",
)
def load_command(
    users: int,
    spawn_rate: float,
    duration: str,
    via: str,
    processes: int,
    pool_size: int,
    wait: str,
    thresholds: tuple[str, ...],
    scenario: str | None,
    out_dir: str | None,
) -> None:
    """Locust load on the seeded CRM: 100 users, a ramp, headless, bounded in time.

    The mix (loadtests/mix.py): lead search by trigram, client lookup by phone, the agency
    dashboard and agent-memory search on the ro port; new leads, bookings (read back on the
    primary) and messages on the primary. Each user works for one agency under RLS.
    Prints percentiles per request type for the steady state (the ramp excluded) and, with
    --scenario, for the fault window and the recovery too. Exit 1 when a threshold is
    breached or the scenario fails; reports, CSV, HTML and a timeline go to --out.
    """
    if scenario is not None and scenario not in CATALOG:
        raise ConfigError(
            f"unknown scenario {scenario!r}", "`harness chaos list` shows the catalog"
        )
    plan = LoadPlan(
        users=users,
        spawn_rate=spawn_rate,
        duration=parse_duration(duration),
        via=via,
        processes=processes,
        pool_size=pool_size,
        wait=parse_wait(wait),
        limits=limits_from(thresholds),
    )
    stack = make_stack()
    label = scenario or f"{users}u-{via}"
    directory = (
        Path(out_dir)
        if out_dir
        else (stack.lab.root / "artifacts" / "load" / f"{label}-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    try:
        if scenario is None:
            result = run_load(stack, plan, directory, say=err.print)
        else:
            result = run_load_chaos(stack, plan, CATALOG[scenario], directory, say=err.print)
    except KeyboardInterrupt:
        err.print(
            f"interrupted: Locust stopped (its reports so far are in {directory}); "
            "any fault was healed"
        )
        sys.exit(130)
    if result.chaos is not None:
        out.print(summary(result.chaos, CATALOG[result.chaos.scenario]), highlight=False)
    out.print(load_summary(result), highlight=False)
    sys.exit(0 if result.passed else 1)


def current_preset() -> TimingPreset:
    return get_preset(os.environ.get("GARDENLAB_PRESET", DEFAULT_PRESET))


@cli.command("backup")
@click.option(
    "--type",
    "kind",
    type=click.Choice(list(BACKUP_TYPES)),
    default="full",
    show_default=True,
    help="full, diff (since the last full) or incr.",
)
def backup_command(kind: str) -> None:
    """Take a pgBackRest backup on the leader into the repository (the `backups` volume)."""
    with err.status(f"{kind} backup on the leader"):
        report = take_backup(make_stack(), kind)
    b = report.backup
    err.print(
        f"backup {b.label} ({b.type}) on {report.node} in {report.seconds:.1f} s: "
        f"database {b.database_bytes / 2**20:,.0f} MiB, "
        f"{b.repository_bytes / 2**20:,.0f} MiB stored"
    )


@cli.command("backups")
@click.option("--json", "as_json", is_flag=True, help="pgBackRest's own JSON (`info`).")
def backups_command(as_json: bool) -> None:
    """List the backups and the archived WAL range. Exit 1 when there is no usable backup."""
    stack = make_stack()
    if as_json:
        click.echo(stack.pgbackrest("info", "--output=json"))
        return
    info = repository_info(stack)
    table = Table(title=f"backups (repository: {info.status_message})", title_justify="left")
    for column in ("label", "type", "started (UTC)", "seconds", "database MiB", "stored MiB"):
        table.add_column(column)
    for row in backups_table_rows(info):
        table.add_row(*row)
    out.print(table)
    out.print(f"archived WAL: {info.archive_min or '-'} .. {info.archive_max or '-'}")
    sys.exit(0 if info.status_code == 0 and info.backups else 1)


@cli.command("restore")
@click.option(
    "--time",
    "target",
    default=None,
    metavar="TIMESTAMP",
    help="Recover to this time, e.g. '2026-11-22 10:30:00+00' (default: the latest).",
)
@click.option("--yes", is_flag=True, help="Do not ask: the cluster's current data is replaced.")
@click.option("--timeout", default=600.0, show_default=True, help="Seconds to wait for readiness.")
def restore_command(target: str | None, yes: bool, timeout: float) -> None:
    """Replace the cluster with a backup's state: the latest, or a point in time.

    First checks that the repository can serve it (a backup ending before the time,
    `pgbackrest verify` clean) and refuses otherwise, leaving the cluster untouched. Then
    destroys the nodes' and etcd's volumes, bootstraps the first node from the backup
    (Patroni, recovering to the target from the archived WAL) and lets the replicas
    clone it. Prints the RTO: from "cluster lost" to "writes accepted again".
    """
    when = parse_timestamp(target) if target else None
    if not yes:
        if not sys.stdin.isatty():
            raise ConfigError("restore replaces the cluster's data", "pass --yes to confirm")
        click.confirm("This replaces all data of the cluster. Go on?", abort=True)
    with ProgressView() as view:
        report = restore(
            make_stack(view.say), current_preset(), when, timeout=timeout, say=view.say
        )
    phases = ", ".join(f"{k} {v:.1f} s" for k, v in report.phases.items())
    err.print(f"[green]restored[/] to {report.target}; RTO {report.rto:.1f} s ({phases})")
    out.print(status_table(make_stack().status()))


def parse_timestamp(text: str) -> datetime:
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise ConfigError(
            f"--time {text!r} is not a timestamp", "e.g. '2026-11-22 10:30:00+00'"
        ) from None
    if when.tzinfo is None:
        raise ConfigError(f"--time {text!r} has no time zone", "add one, e.g. +00 for UTC")
    return when


@cli.command("drill")
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
def drill_command(scale: str, out_dir: str | None) -> None:
    """The timed restore drill: back up, write, mark a point, write more, destroy the
    cluster, restore to the point, and check the content is exactly the point's.

    Exit 1 when any table differs from its checksum at the point, when a row written
    before the point is missing or one written after it is there.
    """
    with ProgressView() as view:
        stack = make_stack(view.say)
        report = drill(stack, current_preset(), scale, say=view.say)
    directory = (
        Path(out_dir)
        if out_dir
        else (stack.lab.root / "artifacts" / f"drill-{time.strftime('%Y%m%d-%H%M%S')}")
    )
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "drill.json").write_text(json.dumps(report.to_json(), indent=1, default=str))
    out.print(drill_summary(report), highlight=False)
    out.print(f"  report: {directory / 'drill.json'}", highlight=False)
    sys.exit(0 if report.passed else 1)


@cli.command("render")
@click.option(
    "--inventory",
    "inventory_path",
    type=click.Path(path_type=Path),
    required=True,
    help="The servers and their roles (YAML; see docs/inventory.example.yml).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    required=True,
    help="Where the bundle goes (replaced): a directory per host, playbook.yml.",
)
def render_command(inventory_path: Path, out_dir: Path) -> None:
    """Render the lab's tested configuration for real servers.

    The same templates and preset as the lab, with the inventory's addresses, network and
    resources; Debian packages pinned to the versions inside the lab's images; an Ansible
    playbook that installs them and runs the services under systemd. Secrets are not in
    the bundle: pass them to ansible-playbook (`--extra-vars @secrets.yml`).
    """
    inventory = load_inventory(inventory_path)
    versions = lab_package_versions({role for h in inventory.hosts for role in h.roles})
    bundles = plan_bundle(inventory, versions)
    written = write_bundle(bundles, out_dir)
    for b in bundles:
        out.print(
            f"{b.host.name} ({b.host.address}): {', '.join(b.host.roles)}; "
            f"{len(b.files) + len(b.templates)} files, {len(b.packages)} packages, "
            f"services {', '.join(b.services)}",
            highlight=False,
        )
    err.print(
        f"wrote {len(written)} files to {out_dir}; deploy with "
        f"`ansible-playbook -i {out_dir}/inventory.yml {out_dir}/playbook.yml "
        "--extra-vars @secrets.yml`"
    )


@cli.command("gate")
@click.option(
    "--target",
    "target_path",
    type=click.Path(path_type=Path),
    required=True,
    help="The cluster's inventory, with its endpoints (docs/inventory.lab.yml).",
)
@click.option(
    "--secrets",
    "secrets_path",
    type=click.Path(path_type=Path),
    default=None,
    help="KEY=VALUE file with POSTGRES_PASSWORD, CRM_APP_PASSWORD and "
    "PATRONI_RESTAPI_PASSWORD [the lab's .env].",
)
@click.option("--users", "-u", default=100, show_default=True, help="Locust users.")
@click.option("--duration", "-t", default="60s", show_default=True, help="Locust's run.")
@threshold_option
@click.option("--max-lag", default=1024 * 1024, show_default=True, help="Bytes a replica may lag.")
@click.option("--max-backup-age", default=26.0, show_default=True, help="Hours.")
@click.option(
    "--allow-disruptive",
    is_flag=True,
    help="Also a planned switchover, with the write outage measured.",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Where gate.json, gate.md and the load reports go [artifacts/gate-TIME].",
)
def gate_command(
    target_path: Path,
    secrets_path: Path | None,
    users: int,
    duration: str,
    thresholds: tuple[str, ...],
    max_lag: int,
    max_backup_age: float,
    allow_disruptive: bool,
    out_dir: Path | None,
) -> None:
    """Go / no-go for a cutover: the lab's checks against the cluster an inventory names.

    Read-only first (a Patroni cluster of this inventory, one leader, replicas streaming
    within --max-lag, a synchronous standby, rw/ro/pooler each reaching the right kind of
    node of this cluster, WAL archiving, a recent backup when the inventory says how to
    read the repository); only then Locust on its endpoints; only with --allow-disruptive
    a planned switchover. Exit 1 on no-go. Nothing runs against a target that is not first
    verified as a healthy Patroni cluster.
    """
    inventory = load_inventory(target_path)
    lab = Lab.discover()
    secrets = read_env_file(secrets_path) if secrets_path else dict(lab.settings)
    plan = LoadPlan(users=users, duration=parse_duration(duration), limits=limits_from(thresholds))
    directory = out_dir or lab.root / "artifacts" / f"gate-{time.strftime('%Y%m%d-%H%M%S')}"
    report = run_gate(
        inventory,
        secrets,
        plan,
        directory,
        allow_disruptive=allow_disruptive,
        max_lag=max_lag,
        max_backup_age=max_backup_age * 3600,
        say=err.print,
    )
    table = Table(
        title=f"cutover gate: {'[green]GO[/]' if report.go else '[bold red]NO-GO[/]'}",
        title_justify="left",
    )
    for column in ("check", "result", "evidence"):
        table.add_column(column)
    marks = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "[dim]skipped[/]"}
    for check in report.checks:
        table.add_row(check.name, marks[check.passed], check.detail)
    out.print(table)
    out.print(f"report: {directory / 'gate.md'}, {directory / 'gate.json'}", highlight=False)
    sys.exit(0 if report.go else 1)


@cli.command("rehearse")
def rehearse_command() -> None:
    """Rehearse the deployment on three bare Debian 13 containers, then check the cluster.

    Renders the bundle for a three-server inventory (docs: `harness render`), applies its
    playbook with Ansible over SSH, waits for the cluster that systemd brings up, and runs
    the gate's read-only checks against it. The containers are removed afterwards.
    Exit 1 when a check fails.
    """
    with ProgressView() as view:
        report = rehearse(Lab.discover(), say=view.say)
    assert report.checks is not None
    for check in report.checks.checks:
        mark = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "skipped"}[check.passed]
        out.print(f"{mark} {check.name}: {check.detail}", highlight=False)
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    out.print(f"rehearsal {'PASSED' if report.passed else 'FAILED'} ({timings})")
    sys.exit(0 if report.passed else 1)


@cli.group()
def fault() -> None:
    """Break the running lab on purpose, and heal it.

    TARGET is a service (pg1-pg3, etcd1-etcd3, haproxy, pgbouncer, faultproxy) or a
    role resolved at injection time: leader, sync-standby, replica. LINK is a node or
    role (its replication link through the fault proxy) or a client path: rw, ro,
    pooler (the proxied ports 5010, 5011, 6442). Faults stay until `harness fault heal`.
    """


def inject(build: Callable[[Faults], Fault]) -> None:
    """Faults from the command line outlive the command: `fault heal` undoes them."""
    built = build(Faults(make_stack()))
    built.apply()
    err.print(f"injected: {built.description}; undo with `harness fault heal`")


def stream_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--stream",
        type=click.Choice(["downstream", "upstream"]),
        default="downstream",
        show_default=True,
        help="downstream: towards the client/replica; upstream: back.",
    )(f)


for _action, _help in (
    ("kill", "SIGKILL a service's container."),
    ("stop", "Stop a service's container gracefully."),
    ("pause", "Freeze a service's container (docker pause)."),
    ("restart", "Restart a service's container."),
):

    def _command(target: str, action: str = _action) -> None:
        inject(lambda f: f.container_fault(action, target))

    fault.command(name=_action, help=_help)(click.argument("target")(_command))


@fault.command()
@click.argument("target")
def isolate(target: str) -> None:
    """Cut a database node from every other container (iptables)."""
    inject(lambda f: f.isolate(target))


@fault.command("cut-etcd")
@click.argument("target")
def cut_etcd(target: str) -> None:
    """Cut a database node from the etcd cluster only (iptables)."""
    inject(lambda f: f.cut_from_etcd(target))


@fault.command("cut-peers")
@click.argument("target")
def cut_peers(target: str) -> None:
    """Cut a database node from the other nodes and its replication (iptables)."""
    inject(lambda f: f.cut_from_peers(target))


@fault.command()
@click.argument("source")
@click.argument("destination")
@click.option("--one-way", is_flag=True, help="Drop only SOURCE -> DESTINATION.")
def partition(source: str, destination: str, one_way: bool) -> None:
    """Drop traffic between two services (one side must be a database node)."""
    inject(lambda f: f.partition(source, destination, one_way))


@fault.command()
@click.argument("link")
@click.argument("delay")
@click.option("--jitter", default="0", help="Random +/- variation, e.g. 20ms.")
@stream_option
def latency(link: str, delay: str, jitter: str, stream: str) -> None:
    """Delay a link's data: `harness fault latency pg2 200ms`."""
    attributes = {"latency": parse_duration_ms(delay), "jitter": parse_duration_ms(jitter)}
    inject(lambda f: f.toxic(link, "latency", attributes, stream))


@fault.command()
@click.argument("link")
@click.argument("rate")
@stream_option
def bandwidth(link: str, rate: str, stream: str) -> None:
    """Limit a link's rate: `harness fault bandwidth rw 100KB/s`."""
    inject(lambda f: f.toxic(link, "bandwidth", {"rate": parse_rate_kbps(rate)}, stream))


for _name, _kind, _help in (
    ("timeout", "timeout", "Stop a link's data; close its connections AFTER (0: hold them open)."),
    ("reset-peer", "reset_peer", "Reset (TCP RST) a link's connections AFTER a delay (0ms: now)."),
):

    def _timed(link: str, after: str, stream: str, kind: str = _kind) -> None:
        attributes = {"timeout": parse_duration_ms(after)}
        inject(lambda f: f.toxic(link, kind, attributes, stream))

    fault.command(name=_name, help=_help)(
        click.argument("link")(click.argument("after")(stream_option(_timed)))
    )


@fault.command("down")
@click.argument("link")
def link_down(link: str) -> None:
    """Take a link down: its proxy refuses and drops connections."""
    inject(lambda f: f.link_down(link))


@fault.command("list")
def list_faults() -> None:
    """Show every fault trace in the lab. Exit 1 when there is any."""
    found = Faults(make_stack()).leftovers()
    if not found:
        out.print("no fault in place")
        return
    for kind, value in asdict(found).items():
        if value:
            out.print(f"{kind}: {value}")
    sys.exit(1)


@fault.command()
def heal() -> None:
    """Undo every fault: unpause, start, remove iptables rules, reset the fault proxy."""
    done = Faults(make_stack()).heal_all()
    err.print("\n".join(f"healed: {line}" for line in done) if done else "nothing to heal")


def main() -> None:
    try:
        cli(standalone_mode=True)
    except HarnessError as exc:
        fail(exc)
