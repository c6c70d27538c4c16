"""The lab's certificate authority and certificates."""

from __future__ import annotations

import click

from harness.cli.app import App, pass_app


@click.group("tls")
def tls() -> None:
    """The lab's CA (tls/ca.crt) and a certificate per service, made on the first `up`.

    Clients verify the servers with `sslmode=verify-full sslrootcert=tls/ca.crt`."""


@tls.command("rotate")
@click.option("--ca", "new_ca", is_flag=True, help="Make a new CA first (the old one is dropped).")
@pass_app
def rotate(app: App, new_ca: bool) -> None:
    """Re-issue every service's certificate and make the running services read it.

    PostgreSQL and PgBouncer reload their files: no restart, no session dropped, no data
    touched. Connections already open keep the certificate they started with."""
    from harness.cli.output import err

    issued = app.lab.tls.rotate(new_ca=new_ca)
    err.print(f"issued into {app.lab.tls.directory}: {', '.join(issued)}")
    reloaded = app.stack().reload_tls()
    err.print(f"reloaded: {', '.join(reloaded) or 'nothing running'}")


@tls.command("check")
@pass_app
def check(app: App) -> None:
    """Each certificate present, unexpired and issued by tls/ca.crt (exit 2 otherwise)."""
    from harness.cli.output import err

    app.lab.tls.check()
    err.print(f"{app.lab.tls.directory}: every certificate valid and issued by ca.crt")
