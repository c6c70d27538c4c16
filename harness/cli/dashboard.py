"""`harness dashboard`: what the lab's Prometheus recorded, as PNG panels (no Grafana in Debian)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.cli.app import App, pass_app
from harness.cli.params import Duration

if TYPE_CHECKING:
    from harness.stack.dashboard import Window

# Prometheus keeps two days (--storage.tsdb.retention.time in the compose file).
LONGEST = 2 * 24 * 3600.0


@click.command("dashboard")
@click.option(
    "--since",
    type=Duration(),
    default="15m",
    show_default=True,
    help="How far back to draw: 90s, 15m, 2h (at most 48h, what Prometheus keeps).",
)
@click.option(
    "--out",
    "out_dir",
    type=click.Path(file_okay=False),
    default=None,
    help="Folder for the PNGs and index.html [default: artifacts/dashboard-<time>].",
)
@pass_app
def dashboard_command(app: App, since: float, out_dir: str | None) -> None:
    """Draw the last --since of the running lab from Prometheus: leader per node, timeline,
    replication lag, commits/s, connections, PgBouncer waits, HAProxy backends, CPU and
    memory of the host and each scraped process, checkpoints; every alert that fired is a
    bar on the alerts panel and a shaded span on the others. Open index.html to see them all.
    """
    import time

    from harness.cli.output import out
    from harness.stack.dashboard import Window, draw_window

    if not 0 < since <= LONGEST:
        raise click.BadParameter(
            f"{since:g} s is not a window Prometheus holds: use more than 0 and at most 48h",
            param_hint="--since",
        )
    end = time.time()
    directory = Path(out_dir) if out_dir else app.lab.artifacts("dashboard")
    written = draw_window(
        app.lab.url("prometheus"), Window(end - since, end, end - since), directory
    )
    out.print(f"{len(written)} panels in {directory} (open index.html)", highlight=False)


def report_panels(app: App, directory: Path, window: Window, marks: Sequence[float]) -> None:
    """A report's panels for its own window in `directory`/panels; the report's verdict stands
    without its pictures when Prometheus cannot draw them."""
    from harness.cli.output import err, out
    from harness.core.errors import HarnessError
    from harness.stack.dashboard import draw_window

    try:
        panels = draw_window(app.lab.url("prometheus"), window, directory / "panels", marks=marks)
    except HarnessError as exc:
        err.print(f"  panels not drawn: {exc.message}", highlight=False)
        return
    out.print(f"  panels: {panels[0].parent / 'index.html'}", highlight=False)
