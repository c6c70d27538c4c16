"""Towards production: render the bundle, rehearse it, gate a cluster."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING

import click

from harness.cli.app import App, pass_app
from harness.cli.load import limits_from, threshold_option
from harness.cli.params import Duration

if TYPE_CHECKING:
    from harness.load.report import Limit


@click.command("render")
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
    from harness.cli.output import err, out
    from harness.config.bundle import lab_package_versions, plan_bundle, write_bundle
    from harness.config.inventory import load_inventory

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


@click.command("gate")
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
@click.option(
    "--duration", "-t", type=Duration(), default="60s", show_default=True, help="Locust's run."
)
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
@pass_app
def gate_command(
    app: App,
    target_path: Path,
    secrets_path: Path | None,
    users: int,
    duration: float,
    thresholds: tuple[Limit, ...],
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
    from rich.table import Table

    from harness.cli.output import MARKS, err, out
    from harness.config.inventory import load_inventory
    from harness.lab.secrets import read_env_file
    from harness.load.plan import LoadPlan
    from harness.promotion.gate import gate

    inventory = load_inventory(target_path)
    secrets = read_env_file(secrets_path) if secrets_path else dict(app.lab.settings)
    plan = LoadPlan(users=users, duration=duration, limits=limits_from(thresholds))
    directory = out_dir or app.lab.artifacts("gate")
    report = gate(
        inventory,
        secrets,
        plan,
        directory,
        allow_disruptive=allow_disruptive,
        max_lag=max_lag,
        max_backup_age=max_backup_age * 3600,
        say=err.print,
    )
    verdict = "[green]GO[/]" if report.passed else "[bold red]NO-GO[/]"
    table = Table(title=f"cutover gate: {verdict}", title_justify="left")
    for column in ("check", "result", "evidence"):
        table.add_column(column)
    for check in report.checks:
        table.add_row(check.name, MARKS[check.passed], check.detail)
    out.print(table)
    out.print(f"report: {directory / 'gate.md'}, {directory / 'gate.json'}", highlight=False)
    sys.exit(0 if report.passed else 1)


@click.command("rehearse")
@pass_app
def rehearse_command(app: App) -> None:
    """Rehearse the deployment on three bare Debian 13 containers, then check the cluster.

    Renders the bundle for a three-server inventory (docs: `harness render`), applies its
    playbook with Ansible over SSH, waits for the cluster that systemd brings up, and runs
    the gate's read-only checks against it. The containers are removed afterwards.
    Exit 1 when a check fails.
    """
    from harness.cli.output import MARKS, ProgressView, out
    from harness.promotion.rehearse import rehearse

    with ProgressView() as view:
        report = rehearse(app.lab, say=view.say)
    assert report.checks is not None
    for check in report.checks.checks:
        out.print(f"{MARKS[check.passed]} {check.name}: {check.detail}", highlight=False)
    timings = ", ".join(f"{k} {v:.0f} s" for k, v in report.seconds.items())
    out.print(f"rehearsal {'PASSED' if report.passed else 'FAILED'} ({timings})")
    sys.exit(0 if report.passed else 1)
