"""`harness` (also `python -m harness`): bring the lab up, look at it, break it, take it down.

A module per command group; each imports what it drives only when it runs, so `--help`
and the quick commands stay fast. Errors the harness expects print as one message plus a
hint and exit non-zero; usage errors exit 2, a status that is not healthy exits 1.
"""

from __future__ import annotations

import importlib
import os
import signal
import sys

import click

from harness.core.errors import HarnessError

# command name -> "module:attribute", imported when the command is looked up.
COMMANDS = {
    "up": "stack:up",
    "down": "stack:down",
    "status": "stack:status",
    "logs": "stack:logs",
    "psql": "stack:psql",
    "migrate": "data:migrate_command",
    "seed": "data:seed_command",
    "verify": "data:verify_command",
    "import": "imports:import_command",
    "chaos": "chaos:chaos",
    "load": "load:load_command",
    "backup": "backup:backup_command",
    "backups": "backup:backups_command",
    "restore": "backup:restore_command",
    "drill": "backup:drill_command",
    "render": "promotion:render_command",
    "gate": "promotion:gate_command",
    "rehearse": "promotion:rehearse_command",
    "fault": "faults:fault",
    "migration": "migration:migration",
    "switchover": "maintenance:switchover",
    "restart": "maintenance:restart",
    "reinit": "maintenance:reinit",
    "dashboard": "dashboard:dashboard_command",
    "scale": "maintenance:scale",
    "tls": "tls:tls",
}


class LazyGroup(click.Group):
    """Commands come from their modules on first use (pip's and click's lazy pattern)."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, cmd_name: str) -> click.Command | None:
        if cmd_name not in COMMANDS:
            return None
        module, attribute = COMMANDS[cmd_name].split(":")
        command = getattr(importlib.import_module(f"harness.cli.{module}"), attribute)
        assert isinstance(command, click.Command)
        return command


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """gardenlab: a three-node Patroni cluster (etcd, HAProxy, PgBouncer) on this machine.

    Endpoints on 127.0.0.1: 5000 read-write (leader), 5001 read-only (replicas),
    6432 PgBouncer, 7000 HAProxy stats, 8008-8010 Patroni REST of pg1-pg3,
    8090 the CSV import service.
    Secrets live in .env at the project root, generated on first `up`.
    """


def main() -> None:
    try:
        cli(standalone_mode=True)
    except HarnessError as exc:
        from harness.cli.output import fail

        fail(exc)
    except SystemExit as exc:
        from harness.cli.output import INTERRUPTED

        if exc.code == INTERRUPTED:
            end_as_interrupted()
        raise


def end_as_interrupted() -> None:
    """End killed by SIGINT, as an interrupted program should: a calling shell or make then
    stops too (a shell shows status 130), and it is one end state whatever Python was doing
    when the signal came."""
    sys.stdout.flush()
    sys.stderr.flush()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.kill(os.getpid(), signal.SIGINT)
