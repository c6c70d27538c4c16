"""`harness fault ...`: break the running lab on purpose, and heal it."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from harness.cli.app import App, pass_app
from harness.cli.params import Milliseconds, Rate

if TYPE_CHECKING:
    from harness.faults.controller import Faults
    from harness.faults.model import ContainerAction, Fault


@click.group()
def fault() -> None:
    """Break the running lab on purpose, and heal it.

    TARGET is a service (pg1-pg3, pg4-pg5 once scaled out, etcd1-etcd3, haproxy, pgbouncer,
    faultproxy, csv-import) or a role resolved at injection time: leader, sync-standby, replica.
    LINK is a node or role (its replication link through the fault proxy), a client
    path: rw, ro, pooler (the proxied ports 5010, 5011, 6442), csv-import (the import
    service's database link) or s3 (pgBackRest's link to the S3 repository). Faults stay
    until `harness fault heal`.
    """


def inject(app: App, build: Callable[[Faults], Fault]) -> None:
    """Faults from the command line outlive the command: `fault heal` undoes them."""
    from harness.cli.output import err
    from harness.faults.controller import Faults

    built = build(Faults(app.stack()))
    built.apply()
    err.print(f"injected: {built.description}; undo with `harness fault heal`")


def container_fault(app: App, action: ContainerAction, target: str) -> None:
    inject(app, lambda f: f.container_fault(action, target))


def stream_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option(
        "--stream",
        type=click.Choice(["downstream", "upstream"]),
        default="downstream",
        show_default=True,
        help="downstream: towards the client/replica; upstream: back.",
    )(f)


@fault.command()
@click.argument("target")
@pass_app
def kill(app: App, target: str) -> None:
    """SIGKILL a service's container."""
    container_fault(app, "kill", target)


@fault.command()
@click.argument("target")
@pass_app
def stop(app: App, target: str) -> None:
    """Stop a service's container gracefully."""
    container_fault(app, "stop", target)


@fault.command()
@click.argument("target")
@pass_app
def pause(app: App, target: str) -> None:
    """Freeze a service's container (docker pause)."""
    container_fault(app, "pause", target)


@fault.command()
@click.argument("target")
@pass_app
def restart(app: App, target: str) -> None:
    """Restart a service's container."""
    container_fault(app, "restart", target)


@fault.command()
@click.argument("target")
@pass_app
def isolate(app: App, target: str) -> None:
    """Cut a database node from every other container (iptables)."""
    inject(app, lambda f: f.isolate(target))


@fault.command("cut-etcd")
@click.argument("target")
@pass_app
def cut_etcd(app: App, target: str) -> None:
    """Cut a database node from the etcd cluster only (iptables)."""
    inject(app, lambda f: f.cut_from_etcd(target))


@fault.command("cut-peers")
@click.argument("target")
@pass_app
def cut_peers(app: App, target: str) -> None:
    """Cut a database node from the other nodes and its replication (iptables)."""
    inject(app, lambda f: f.cut_from_peers(target))


@fault.command()
@click.argument("source")
@click.argument("destination")
@click.option("--one-way", is_flag=True, help="Drop only SOURCE -> DESTINATION.")
@pass_app
def partition(app: App, source: str, destination: str, one_way: bool) -> None:
    """Drop traffic between two services (one side must be a database node)."""
    inject(app, lambda f: f.partition(source, destination, one_way))


@fault.command()
@click.argument("link")
@click.argument("delay", type=Milliseconds())
@click.option("--jitter", type=Milliseconds(), default="0", help="Random +/- variation, e.g. 20ms.")
@stream_option
@pass_app
def latency(app: App, link: str, delay: int, jitter: int, stream: str) -> None:
    """Delay a link's data: `harness fault latency pg2 200ms`."""
    inject(app, lambda f: f.toxic(link, "latency", {"latency": delay, "jitter": jitter}, stream))


@fault.command()
@click.argument("link")
@click.argument("rate", type=Rate())
@stream_option
@pass_app
def bandwidth(app: App, link: str, rate: int, stream: str) -> None:
    """Limit a link's rate: `harness fault bandwidth rw 100KB/s`."""
    inject(app, lambda f: f.toxic(link, "bandwidth", {"rate": rate}, stream))


@fault.command()
@click.argument("link")
@click.argument("after", type=Milliseconds())
@stream_option
@pass_app
def timeout(app: App, link: str, after: int, stream: str) -> None:
    """Stop a link's data; close its connections AFTER (0: hold them open)."""
    inject(app, lambda f: f.toxic(link, "timeout", {"timeout": after}, stream))


@fault.command("reset-peer")
@click.argument("link")
@click.argument("after", type=Milliseconds())
@stream_option
@pass_app
def reset_peer(app: App, link: str, after: int, stream: str) -> None:
    """Reset (TCP RST) a link's connections AFTER a delay (0ms: now)."""
    inject(app, lambda f: f.toxic(link, "reset_peer", {"timeout": after}, stream))


@fault.command("down")
@click.argument("link")
@pass_app
def link_down(app: App, link: str) -> None:
    """Take a link down: its proxy refuses and drops connections."""
    inject(app, lambda f: f.link_down(link))


@fault.command("list")
@pass_app
def list_faults(app: App) -> None:
    """Show every fault trace in the lab. Exit 1 when there is any."""
    from dataclasses import asdict

    from harness.cli.output import out
    from harness.faults.controller import Faults

    found = Faults(app.stack()).traces()
    if not found:
        out.print("no fault in place")
        return
    for kind, value in asdict(found).items():
        if value:
            out.print(f"{kind}: {value}")
    sys.exit(1)


@fault.command()
@pass_app
def heal(app: App) -> None:
    """Undo every fault: unpause, start, remove iptables rules, reset the fault proxy."""
    from harness.cli.output import err
    from harness.faults.controller import Faults

    done = Faults(app.stack()).heal_all()
    err.print("\n".join(f"healed: {line}" for line in done) if done else "nothing to heal")
