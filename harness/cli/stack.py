"""The lab itself: up, down, status, logs, psql."""

from __future__ import annotations

import json
import os
import sys

import click

from harness.cli.app import App, pass_app
from harness.data.scales import SCALES
from harness.lab.presets import DEFAULT_PRESET, PRESETS
from harness.lab.topology import ENDPOINTS, NODES, SUPABASE


@click.command()
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
@click.option(
    "--source",
    is_flag=True,
    help="Also start the migration source (a stand-in for the hosted Supabase database, "
    "127.0.0.1:5440, legacy table names, seeded) and the application endpoint (127.0.0.1:6433).",
)
@click.option(
    "--source-scale",
    type=click.Choice(list(SCALES)),
    default="small",
    show_default=True,
    help="Rows the source is seeded with (with --source; an already seeded source is kept).",
)
@pass_app
def up(
    app: App, preset: str, timeout: float, supabase: bool, source: bool, source_scale: str
) -> None:
    """Build and start the stack, then wait until it is proven healthy.

    Installs the Docker engine and Compose plugin first when missing (root on
    Debian). Running it again on a healthy stack changes nothing. Ctrl-C stops
    the half-started stack (data volumes are kept) so the next `up` starts clean.
    """
    from harness.cli.output import INTERRUPTED, ProgressView, err, out, status_table
    from harness.core.errors import HarnessError
    from harness.lab.presets import get_preset
    from harness.provision.up import bring_up
    from harness.stack.engine import Engine

    chosen = get_preset(preset)
    with ProgressView() as view:
        stack = app.stack(view.say)
        try:
            report = bring_up(
                stack,
                chosen,
                timeout,
                ensure_engine=Engine(say=view.say).ensure,
                on_build_line=view.build_line,
                on_round=view.readiness_round,
                supabase=supabase,
                source_scale=source_scale if source else None,
                say=view.say,
            )
        except KeyboardInterrupt:
            view.say("interrupted: stopping the stack (data volumes kept) so `up` starts clean")
            try:
                stack.down(volumes=False)
            except HarnessError as exc:
                view.say(f"could not stop it: {exc.message}; run `harness down`")
            sys.exit(INTERRUPTED)
    phases = ", ".join(f"{name} {seconds:.1f}" for name, seconds in report.up.phases.items())
    err.print(
        f"[green]ready[/] in {sum(report.up.phases.values()):.1f} s ({phases}); "
        f"preset {chosen.name}"
    )
    if report.up.preset_changes:
        err.print(f"patched Patroni's live configuration: {report.up.preset_changes}")
    if report.up.restarted:
        err.print(f"restarted for pending settings: {', '.join(report.up.restarted)}")
    if report.migrations:
        err.print(f"applied migrations: {', '.join(report.migrations)}")
    if report.supabase is not None:
        err.print(f"Supabase: started {', '.join(report.supabase.started) or 'nothing'}")
        for service, why in report.supabase.missing.items():
            err.print(f"  [yellow]not started[/] {service}: {why}", highlight=False)
    if report.source is not None:
        what = report.source.outcome
        err.print(
            f"migration source: {what} ({report.source.scale}) on "
            f"127.0.0.1:{stack.lab.ports['source']}; application endpoint on "
            f"127.0.0.1:{stack.lab.ports['endpoint']}"
        )
    out.print(status_table(stack.status()))


@click.command()
@click.option("--volumes", "-v", is_flag=True, help="Also delete the data volumes (all data).")
@pass_app
def down(app: App, volumes: bool) -> None:
    """Stop and remove the stack's containers and network (and volumes with --volumes).

    Works from any state, including leftovers of an earlier run or a missing .env.
    """
    from harness.cli.output import err

    removed = app.stack().down(volumes=volumes)
    counts = ", ".join(f"{len(names)} {kind}" for kind, names in removed.items())
    err.print(f"removed {counts}" if any(removed.values()) else "nothing to remove")


@click.command()
@click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON.")
@click.option(
    "--supabase", is_flag=True, help="Also the Supabase services, URLs and API keys (secrets!)."
)
@pass_app
def status(app: App, as_json: bool, supabase: bool) -> None:
    """Show members, roles, timelines, lag and HAProxy's routing. Exit 1 unless healthy."""
    from harness.cli.output import monitoring_lines, out, status_json, status_table
    from harness.stack.supabase import client_settings, settings_json, supabase_states

    stack = app.stack()
    current = stack.status()
    if supabase:
        if as_json:
            click.echo(settings_json(stack.lab, stack))
        else:
            states = supabase_states(stack)
            listed = ", ".join(f"{s} {st}" for s, st in sorted(states.items()))
            out.print(f"Supabase services: {listed or 'none (`harness up --supabase`)'}")
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
        if current.containers:
            for line in monitoring_lines(current):
                out.print(line, highlight=False)
    sys.exit(0 if current.healthy else 1)


@click.command()
@click.argument("services", nargs=-1)
@click.option("--follow", "-f", is_flag=True, help="Keep streaming new lines (Ctrl-C stops).")
@click.option("--tail", default="100", show_default=True, help="Lines per service, or 'all'.")
@pass_app
def logs(app: App, services: tuple[str, ...], follow: bool, tail: str) -> None:
    """Print the logs of the stack's services (all of them by default)."""
    compose = app.stack().compose([SUPABASE])
    if follow:
        try:
            for line in compose.follow(services, tail):
                sys.stdout.buffer.write(line)
                sys.stdout.flush()
        except KeyboardInterrupt:
            pass
    else:
        click.echo(compose.logs(services, tail))


@click.command(context_settings={"ignore_unknown_options": True})
@click.argument("psql_args", nargs=-1, type=click.UNPROCESSED, metavar="[rw|ro|pooler] [PSQL ARGS]")
@pass_app
def psql(app: App, psql_args: tuple[str, ...]) -> None:
    """Open psql on an endpoint: rw (leader, the default), ro (replicas) or pooler (PgBouncer).

    Runs the cluster's own psql 17 inside a running node, so nothing needs
    installing here. Extra arguments go to psql, e.g. `harness psql ro -c 'select 1'`
    or `harness psql -c 'select 1'` (on rw).
    """
    from harness.core.process import replace

    endpoint, args = "rw", list(psql_args)
    if args and not args[0].startswith("-"):
        if args[0] not in ENDPOINTS:
            choices = ", ".join(repr(e) for e in ENDPOINTS)
            raise click.BadParameter(f"{args[0]!r} is not one of {choices}", param_hint="ENDPOINT")
        endpoint = args.pop(0)
    command, env = app.stack().psql_command(endpoint, args)  # type: ignore[arg-type]
    replace(command, {**os.environ, **env})
