"""`harness dashboard`: what the lab's Prometheus recorded, as PNG panels (no Grafana in Debian)."""

from __future__ import annotations

import click

from harness.cli.app import App, pass_app
from harness.cli.params import Duration

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
    from pathlib import Path

    from harness.cli.output import out
    from harness.clients.monitoring import PrometheusClient
    from harness.stack.dashboard import Window, draw

    if not 0 < since <= LONGEST:
        raise click.BadParameter(
            f"{since:g} s is not a window Prometheus holds: use more than 0 and at most 48h",
            param_hint="--since",
        )
    end = time.time()
    directory = Path(out_dir) if out_dir else app.lab.artifacts("dashboard")
    prometheus = PrometheusClient(app.lab.url("prometheus"), timeout=10)
    try:
        written = draw(prometheus, Window(end - since, end, end - since), directory)
    finally:
        prometheus.close()
    out.print(f"{len(written)} panels in {directory} (open index.html)", highlight=False)
