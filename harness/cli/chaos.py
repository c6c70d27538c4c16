"""Chaos scenarios from the catalog, under write load, checked afterwards."""

from __future__ import annotations

import sys

import click

from harness.cli.app import App, pass_app


@click.group()
def chaos() -> None:
    """Run chaos scenarios under write load and check the invariants afterwards."""


@chaos.command("list")
def chaos_list() -> None:
    """The scenario catalog, with what each one promises."""
    from harness.chaos.catalog import CATALOG
    from harness.cli.output import out

    for scenario in CATALOG.values():
        budget = scenario.expect.max_write_gap
        shown = "none" if budget is None else f"{budget:g} s"
        errors = scenario.expect.max_client_errors
        client = "" if errors is None else f", client errors: {errors}"
        out.print(
            f"[bold]{scenario.name}[/] \\[{scenario.group}] (write outage budget: {shown}{client})"
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
    help="Where result.json, timeline.png and panels/ go [artifacts/NAME-TIME].",
)
@pass_app
def chaos_run(app: App, name: str, writers: int, out_dir: str | None) -> None:
    """Run one scenario; exit 1 when an invariant or a budget fails."""
    from pathlib import Path

    from harness.chaos.catalog import scenario_named
    from harness.chaos.report import record_window, summary, write_report
    from harness.chaos.runner import run
    from harness.cli.dashboard import report_panels
    from harness.cli.output import err, out

    scenario = scenario_named(name)
    stack = app.stack()
    result = run(stack, scenario, writers=writers, say=err.print)
    directory = Path(out_dir) if out_dir else app.lab.artifacts(name)
    json_path, png_path = write_report(result, directory)
    out.print(summary(result), highlight=False)
    out.print(f"  report: {json_path}, {png_path}", highlight=False)
    report_panels(app, directory, *record_window(result.record))
    sys.exit(0 if result.passed else 1)
