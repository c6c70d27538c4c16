"""The one builder of connection strings and URLs, for the lab and for real servers."""

from __future__ import annotations

from urllib.parse import quote

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
) -> str:
    """The libpq connection string every gardenlab client uses, the lab's or a server's."""
    params = {
        "host": host,
        "port": str(port),
        "dbname": dbname,
        "user": role,
        "password": password,
        "connect_timeout": str(connect_timeout),
        "application_name": application_name,
        **(KEEPALIVES if keepalives else {}),
    }
    return " ".join(f"{key}={libpq_value(value)}" for key, value in params.items())


def sqlalchemy_url(host: str, port: int | str, role: str, password: str, dbname: str) -> str:
    """The URL form (yoyo-migrations takes one), every part quoted."""
    return (
        f"postgresql+psycopg://{quote(role, safe='')}:{quote(password, safe='')}"
        f"@{host}:{port}/{quote(dbname, safe='')}"
    )


def http_url(host: str, port: int | str, path: str = "") -> str:
    return f"http://{host}:{port}{path}"


def split_address(address: str) -> tuple[str, str]:
    """`host:port` (IPv6 in brackets) into host and port."""
    host, _, port = address.rpartition(":")
    return host.strip("[]"), port
