"""Locust load on the seeded CRM, alone or under a chaos scenario."""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING

import click

from harness.cli.app import App, pass_app
from harness.cli.params import Duration, Threshold, Wait
from harness.lab.topology import PRIMARY_PATHS

if TYPE_CHECKING:
    from harness.load.report import Limit

threshold_option = click.option(
    "--threshold",
    "thresholds",
    multiple=True,
    type=Threshold(),
    metavar="[REQUEST:]METRIC=VALUE",
    help="Fail when a steady-state metric reaches it; repeatable. Metrics p50, p95, p99 (ms) "
    "and errors (ratio). Defaults: p95=100 (all requests), each:p95=100 (every request type "
    "on its own), errors=0.001 (0.1 %). Per request type: search_leads:p99=50, which takes "
    "the place of each: for that type.",
)


def limits_from(thresholds: tuple[Limit, ...]) -> tuple[Limit, ...]:
    """The default thresholds with the command line's in place of their kind."""
    from harness.load.plan import DEFAULT_LIMITS
    from harness.load.report import merge_limits

    return tuple(merge_limits(DEFAULT_LIMITS, thresholds))


@click.command("load")
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
    type=Duration(),
    default="3m",
    show_default=True,
    help="The whole run, ramp included: 90, 90s, 3m, 1h. Ignored with --scenario, "
    "which runs ramp + 20 s + the scenario + 15 s.",
)
@click.option(
    "--via",
    type=click.Choice(list(PRIMARY_PATHS)),
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
    type=Wait(),
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
    "--with-import",
    "import_rows",
    type=click.IntRange(min=1000),
    default=None,
    metavar="ROWS",
    help="Run a CSV import of ROWS rows (at least 1000) through the csv-import service once "
    "the load is steady; the report shows the p95 without it, while it runs, and after. "
    "Ignores --duration: ramp + 20 s + the import + 15 s.",
)
@click.option(
    "--find-capacity",
    is_flag=True,
    help="Step the user count (--start, --step, --ceiling, --step-duration) until a step "
    "breaks a threshold; report the last user count that held, its throughput, a plot, and "
    "a pgbench reference on the same cluster. --users and --duration are then unused.",
)
@click.option("--start", default=50, show_default=True, help="Users of the first step.")
@click.option("--step", default=50, show_default=True, help="Users added at each step.")
@click.option("--ceiling", default=400, show_default=True, help="Users of the last step.")
@click.option(
    "--step-duration",
    type=Duration(),
    default="30s",
    show_default=True,
    help="How long each step lasts; it is judged from when its users all run.",
)
@click.option(
    "--pgbench-clients",
    default=8,
    show_default=True,
    help="pgbench's clients for the reference (0: no pgbench run).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(),
    default=None,
    help="Where the reports go [artifacts/load/NAME-TIME].",
)
@pass_app
def load_command(
    app: App,
    users: int,
    spawn_rate: float,
    duration: float,
    via: str,
    processes: int,
    pool_size: int,
    wait: tuple[float, float],
    thresholds: tuple[Limit, ...],
    scenario: str | None,
    import_rows: int | None,
    find_capacity: bool,
    start: int,
    step: int,
    ceiling: int,
    step_duration: float,
    pgbench_clients: int,
    out_dir: str | None,
) -> None:
    """Locust load on the seeded CRM: 100 users, a ramp, headless, bounded in time.

    The mix (loadtests/mix.py): lead search by trigram, client lookup by phone, the agency
    dashboard and agent-memory search on the ro port; new leads, bookings (read back on the
    primary) and messages on the primary. Each user works for one agency under RLS.
    Prints percentiles per request type for the steady state (the ramp excluded) and, with
    --scenario, for the fault window and the recovery too; with --with-import, for the
    window while the import runs and the one after it (thresholds on the steady window
    before it). Exit 1 when a threshold is breached, the scenario fails or the import's
    rows are not each there once; reports, CSV, HTML and a timeline go to --out.

    With --find-capacity: steps of users judged by the same thresholds, each step on its
    own window; prints the last user count that held and the throughput there, then
    pgbench's rate on the same cluster for the mix's read/write weights; capacity.png plots
    p95 and throughput against users with the knee marked. Exit 1 when even the first step
    breaks (start lower).
    """
    from pathlib import Path

    from harness.chaos.catalog import scenario_named
    from harness.chaos.report import summary
    from harness.cli.dashboard import report_panels
    from harness.cli.output import err, exit_interrupted, out
    from harness.core.errors import ConfigError
    from harness.load.capacity import CapacityPlan, run_capacity
    from harness.load.capacity import summary as capacity_summary
    from harness.load.pgbench import PgbenchPlan
    from harness.load.plan import LoadPlan
    from harness.load.run import panel_window, run_load, run_load_chaos, run_load_import
    from harness.load.run import summary as load_summary

    modes = [
        name
        for name, chosen_mode in (
            ("--scenario", scenario is not None),
            ("--with-import", import_rows is not None),
            ("--find-capacity", find_capacity),
        )
        if chosen_mode
    ]
    if len(modes) > 1:
        raise ConfigError(
            f"{' and '.join(modes)} do not go together",
            "run one at a time: find the capacity first, then a scenario or an import at that "
            "user count",
        )
    chosen = scenario_named(scenario) if scenario is not None else None
    plan = LoadPlan(
        users=users,
        spawn_rate=spawn_rate,
        duration=duration,
        via="pgbouncer" if via == "pgbouncer" else "haproxy",
        processes=processes,
        pool_size=pool_size,
        wait=wait,
        limits=limits_from(thresholds),
    )
    if find_capacity:
        capacity = CapacityPlan(
            plan,
            start,
            step,
            ceiling,
            step_duration,
            PgbenchPlan(pgbench_clients, step_duration) if pgbench_clients else None,
        )
    stack = app.stack()
    label = scenario or (
        f"capacity-{via}"
        if find_capacity
        else f"{users}u-{via}" + (f"-import{import_rows}" if import_rows else "")
    )
    directory = Path(out_dir) if out_dir else app.lab.artifacts("load", label)
    if find_capacity:
        try:
            found = run_capacity(stack, capacity, directory, say=err.print)
        except KeyboardInterrupt:
            exit_interrupted(f"interrupted: Locust stopped (its reports so far are in {directory})")
        out.print(capacity_summary(found), highlight=False)
        return
    try:
        if import_rows is not None:
            result = run_load_import(stack, plan, import_rows, directory, say=err.print)
        elif chosen is None:
            result = run_load(stack, plan, directory, say=err.print)
        else:
            result = run_load_chaos(stack, plan, chosen, directory, say=err.print)
    except KeyboardInterrupt:
        exit_interrupted(
            f"interrupted: Locust stopped (its reports so far are in {directory}); "
            "any fault was healed" + ("; the import goes on in the service" if import_rows else "")
        )
    if result.chaos is not None:
        out.print(summary(result.chaos), highlight=False)
    out.print(load_summary(result), highlight=False)
    report_panels(app, directory, *panel_window(result))
    sys.exit(0 if result.passed else 1)
