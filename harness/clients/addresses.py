"""The one builder of connection strings and URLs, for the lab and for real servers."""

from __future__ import annotations

from urllib.parse import quote, urlencode

from psycopg.conninfo import conninfo_to_dict

from harness.core.errors import HarnessError, first_line

APPLICATION_NAME = "gardenlab-harness"
# A dead connection turns into an error within ~5 s instead of hanging a writer.
KEEPALIVES = {
    "keepalives": "1",
    "keepalives_idle": "2",
    "keepalives_interval": "1",
    "keepalives_count": "3",
}


def libpq_value(value: str) -> str:
    """A value as libpq's key=value syntax needs it: quoted when it has spaces or quotes."""
    if value and not any(c in value for c in " '\\"):
        return value
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def conninfo(
    host: str,
    port: int | str,
    role: str,
    password: str,
    dbname: str = "postgres",
    *,
    connect_timeout: int = 3,
    keepalives: bool = False,
    application_name: str = APPLICATION_NAME,
    sslrootcert: str | None = None,
) -> str:
    """The libpq connection string every gardenlab client uses, the lab's or a server's.

    With `sslrootcert` (the CA's file), TLS is required and the server's certificate must be
    the CA's and name `host`: a plaintext or impostor server is refused before the password."""
    params = {
        "host": host,
        "port": str(port),
        "dbname": dbname,
        "user": role,
        "password": password,
        "connect_timeout": str(connect_timeout),
        "application_name": application_name,
        **(KEEPALIVES if keepalives else {}),
        **tls_params(sslrootcert),
    }
    return " ".join(f"{key}={libpq_value(value)}" for key, value in params.items())


def tls_params(sslrootcert: str | None) -> dict[str, str]:
    """libpq's TLS settings: verify-full against the CA, or none (libpq's default)."""
    return {"sslmode": "verify-full", "sslrootcert": sslrootcert} if sslrootcert else {}


# What a server answers a client that did not encrypt: PostgreSQL's pg_hba (`hostnossl ...
# reject`) and PgBouncer's `client_tls_sslmode = require`.
PLAINTEXT_REFUSED = ("no encryption", "SSL required")
LAB_CA = "tls/ca.crt"  # the lab CA, from the repository root


def tls_conninfo(dsn: str, sslrootcert: str = LAB_CA) -> str:
    """`dsn` (key=value or URL) as it has to be given: verify-full against the CA. The password
    is left out (PGPASSWORD or .pgpass give it), so the string can be shown."""
    params = {k: str(v) for k, v in conninfo_to_dict(dsn).items() if k != "password"}
    params |= tls_params(sslrootcert)
    return " ".join(f"{key}={libpq_value(value)}" for key, value in params.items())


def refused_plaintext(exc: Exception) -> bool:
    """The server turned the connection down for want of TLS (not down, not a bad password)."""
    return any(phrase in str(exc) for phrase in PLAINTEXT_REFUSED)


def connection_error(exc: Exception, what: str, hint: str, dsn: str) -> HarnessError:
    """A failed connection in one line; refused for want of TLS, it says so and shows the
    connection string to use instead of the generic `hint`."""
    if refused_plaintext(exc):
        return HarnessError(
            f"the {what} requires TLS and refused a plaintext connection: {first_line(exc)}",
            f'connect with TLS verified against the lab CA: "{tls_conninfo(dsn)}"',
        )
    return HarnessError(f"cannot reach the {what}: {first_line(exc)}", hint)


def sqlalchemy_url(
    host: str,
    port: int | str,
    role: str,
    password: str,
    dbname: str,
    sslrootcert: str | None = None,
) -> str:
    """The URL form (yoyo-migrations takes one), every part quoted."""
    query = urlencode(tls_params(sslrootcert))
    return (
        f"postgresql+psycopg://{quote(role, safe='')}:{quote(password, safe='')}"
        f"@{host}:{port}/{quote(dbname, safe='')}" + (f"?{query}" if query else "")
    )


def http_url(host: str, port: int | str, path: str = "", *, tls: bool = False) -> str:
    """An HTTP service's URL; `tls`: HTTPS (Patroni's REST API when the site has TLS)."""
    return f"{'https' if tls else 'http'}://{host}:{port}{path}"


def split_address(address: str) -> tuple[str, str]:
    """`host:port` (IPv6 in brackets) into host and port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port
