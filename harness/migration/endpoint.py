"""The application endpoint's PgBouncer, driven through its admin console: PAUSE (in-flight
transactions finish, new ones queue), repoint (rewrite its file, RELOAD), RESUME.

PAUSE waits for every transaction running through the endpoint; one that never ends would
hold it forever, so a pause that takes longer than its timeout is undone (RESUME from a
second admin connection) and refused: the endpoint is never left half-paused.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import psycopg

from harness.core.errors import HarnessError, first_line

Repoint = Callable[[str, int], None]  # writes the endpoint's configuration: host, port
Console = Callable[[str], list[dict[str, Any]]]  # one admin command -> its rows


def admin(dsn: str) -> psycopg.Connection[Any]:
    try:
        # The admin console speaks the simple query protocol only: no parameters, no prepare.
        return psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
    except psycopg.OperationalError as exc:
        raise HarnessError(
            f"cannot reach the application endpoint's admin console: {first_line(exc)}",
            "is the endpoint up? `harness up --source` starts it",
        ) from None


def pgbouncer_console(dsn: str) -> Console:
    """PgBouncer's admin console, a connection per command (PAUSE blocks its own)."""

    def run(command: str) -> list[dict[str, Any]]:
        with admin(dsn) as conn:
            try:
                cur = conn.execute(command.encode())
            except psycopg.Error as exc:
                raise HarnessError(
                    f"the endpoint refused {command}: {first_line(exc)}", "see its logs"
                ) from None
            if cur.description is None:
                return []
            names = [d.name for d in cur.description]
            return [dict(zip(names, row, strict=True)) for row in cur.fetchall()]

    return run


@dataclass
class Endpoint:
    console: Console
    repoint_file: Repoint
    paused: bool = False

    @classmethod
    def at(cls, admin_dsn: str, repoint_file: Repoint) -> Endpoint:
        return cls(pgbouncer_console(admin_dsn), repoint_file)

    def upstream(self) -> tuple[str, int]:
        """Where the endpoint sends the postgres database now."""
        for entry in self.console("SHOW DATABASES"):
            if entry["name"] == "postgres":
                return str(entry["host"]), int(entry["port"])
        raise HarnessError("the endpoint has no postgres database", "check its rendered file")

    def pause(self, timeout: float) -> None:
        done = threading.Event()
        failure: list[BaseException] = []

        def run() -> None:
            try:
                self.console("PAUSE")
            except BaseException as exc:
                failure.append(exc)
            finally:
                done.set()

        threading.Thread(target=run, name="endpoint-pause", daemon=True).start()
        if not done.wait(timeout):
            self.resume()
            raise HarnessError(
                f"the endpoint did not pause within {timeout:.0f} s: a transaction through it "
                "stays open; resumed, nothing changed",
                "find it in the source's pg_stat_activity, or raise --pause-timeout",
            )
        if failure:
            raise HarnessError(f"PAUSE failed: {first_line(failure[0])}", "see the endpoint's logs")
        self.paused = True

    def resume(self) -> None:
        try:
            self.console("RESUME")
        except HarnessError as exc:
            if "not paused" not in exc.message:
                raise
        self.paused = False

    def repoint(self, host: str, port: int) -> None:
        self.repoint_file(host, port)
        self.console("RELOAD")
        now = self.upstream()
        if now != (host, port):
            raise HarnessError(
                f"the endpoint still points at {now[0]}:{now[1]} after RELOAD",
                "its file may not be the one it reads: check the endpoint's volume",
            )
