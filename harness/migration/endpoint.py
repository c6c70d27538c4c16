"""The application endpoint's PgBouncer, driven through its admin console: PAUSE (in-flight
transactions finish, new ones queue), repoint (rewrite its file, RELOAD), RESUME.

The console is the one PgBouncer client (`harness.clients.pgbouncer`): a PAUSE that a
never-ending transaction holds past its timeout is undone and refused, so the endpoint is
never left half-paused.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

from harness.clients.pgbouncer import PgBouncerAdmin
from harness.core.errors import HarnessError

Repoint = Callable[[str, int], None]  # writes the endpoint's configuration: host, port


class Console(Protocol):
    """What the endpoint needs of PgBouncer's admin console (a fake in unit tests)."""

    def rows(self, command: str) -> list[dict[str, Any]]: ...

    def pause(self, timeout: float) -> None: ...

    def resume(self) -> None: ...


@dataclass
class Endpoint:
    console: Console
    repoint_file: Repoint
    paused: bool = False

    @classmethod
    def at(cls, admin_dsn: str, repoint_file: Repoint) -> Endpoint:
        hint = "is the endpoint up? `harness up --source` starts it"
        return cls(PgBouncerAdmin(admin_dsn, hint), repoint_file)

    def upstream(self) -> tuple[str, int]:
        """Where the endpoint sends the postgres database now."""
        for entry in self.console.rows("SHOW DATABASES"):
            if entry["name"] == "postgres":
                return str(entry["host"]), int(entry["port"])
        raise HarnessError("the endpoint has no postgres database", "check its rendered file")

    def pause(self, timeout: float) -> None:
        self.console.pause(timeout)
        self.paused = True

    def resume(self) -> None:
        self.console.resume()
        self.paused = False

    def repoint(self, host: str, port: int) -> None:
        self.repoint_file(host, port)
        self.console.rows("RELOAD")
        now = self.upstream()
        if now != (host, port):
            raise HarnessError(
                f"the endpoint still points at {now[0]}:{now[1]} after RELOAD",
                "its file may not be the one it reads: check the endpoint's volume",
            )
