"""Planned maintenance on the running lab: switchover, rolling restart, replica rebuild,
members added and removed."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING

import click

from harness.cli.app import App, pass_app

if TYPE_CHECKING:
    from harness.maintenance.planned import Planned


@contextmanager
def planned(app: App) -> Iterator[Planned]:
    """The planned-work driver; Ctrl-C ends the command once PgBouncer has been resumed."""
    from harness.cli.output import err, exit_interrupted
    from harness.maintenance.planned import Planned

    try:
        yield Planned(app.stack(), say=err.print)
    except KeyboardInterrupt:
        exit_interrupted("interrupted: PgBouncer was resumed; `harness status` shows the cluster")


def timeout_option(default: float) -> Callable[[Callable[..., None]], Callable[..., None]]:
    return click.option(
        "--timeout", default=default, show_default=True, help="Seconds to wait for each step."
    )


@click.command()
@click.option(
    "--to",
    "to",
    metavar="MEMBER",
    default=None,
    help="The replica to hand the leadership to [the synchronous standby].",
)
@timeout_option(60.0)
@pass_app
def switchover(app: App, to: str | None, timeout: float) -> None:
    """Move the leadership to a replica without errors for clients of PgBouncer.

    PgBouncer is paused (running transactions finish, new queries wait), Patroni switches
    over, and once HAProxy routes rw to the new leader PgBouncer resumes: its clients see
    a delay, not an error. Clients on the direct rw port (5000) see their connection
    closed and reconnect to the new leader. PgBouncer is resumed on any error or Ctrl-C.
    """
    from harness.cli.output import err

    with planned(app) as work:
        result = work.switchover(to, timeout)
    err.print(
        f"[green]switched over[/] {result.leader} -> {result.candidate}: PgBouncer held "
        f"queries {result.paused:.2f} s (Patroni {result.switchover:.2f} s, "
        f"HAProxy routing after {result.routed:.2f} s)"
    )


@click.command()
@click.option("--rolling", is_flag=True, help="Restart members one at a time (required).")
@timeout_option(120.0)
@pass_app
def restart(app: App, rolling: bool, timeout: float) -> None:
    """Restart the members whose settings wait for a restart, one at a time.

    Replicas first; then, if the leader is pending, a switchover (PgBouncer paused, as
    `harness switchover` does) and the old leader last. Exits 1 and changes nothing when
    no member has a restart pending.
    """
    from harness.cli.output import err

    if not rolling:
        raise click.UsageError("only a rolling restart is offered: `harness restart --rolling`")
    with planned(app) as work:
        result = work.rolling_restart(timeout)
    moved = (
        f"; leadership {result.switchover.leader} -> {result.switchover.candidate}"
        if result.switchover
        else ""
    )
    err.print(f"[green]restarted[/] {', '.join(result.restarted)}{moved}")


@click.command()
@click.argument("member")
@timeout_option(300.0)
@pass_app
def reinit(app: App, member: str, timeout: float) -> None:
    """Rebuild replica MEMBER from the leader (its data directory is replaced).

    The leader does not move, so clients do not notice. Refused for the leader.
    """
    from harness.cli.output import err

    with planned(app) as work:
        seconds = work.reinit(member, timeout)
    err.print(f"[green]rebuilt[/] {member} in {seconds:.1f} s; it streams from the leader")


@click.command()
@click.option(
    "--replicas",
    "total",
    type=int,
    required=True,
    metavar="N",
    help="Members the cluster should have, the leader included: 3 to 5.",
)
@timeout_option(300.0)
@pass_app
def scale(app: App, total: int, timeout: float) -> None:
    """Add or remove members (pg4, pg5) so the cluster has N, for read load.

    A joining member is cloned from the leader and enters HAProxy's ro pool (5001) once it
    streams. A leaving member (pg5 before pg4) is stopped, its member key deleted from etcd,
    its replication slot dropped on the leader, and its container and volume removed.
    Refused, with nothing changed, below 3 or above 5 members, while other planned work is
    under way (a switchover, PgBouncer paused), or when a leaving member leads.
    """
    from harness.cli.output import err
    from harness.maintenance.scale import Scale

    with planned(app) as work:
        result = Scale(work).scale(total, timeout)
    if not result.changed:
        err.print(f"the cluster has {len(result.after)} members already: nothing to do")
        return
    err.print(
        f"[green]scaled[/] {len(result.before)} -> {len(result.after)} members: "
        f"{', '.join(result.after)}"
    )
