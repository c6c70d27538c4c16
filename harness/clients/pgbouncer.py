"""PgBouncer's admin console: pause the pool around planned work (a switchover, the
migration's cutover), resume it, reload it, ask its state.

PAUSE lets running transactions finish, closes every server connection and holds new
queries in PgBouncer; RESUME lets them through, on fresh server connections. Clients see a
delay, not an error. The console speaks only the simple query protocol, which psycopg
uses for a statement without parameters.
"""

from __future__ import annotations

import contextlib
import os
import socket
import threading
from typing import Any, Protocol

import psycopg

from harness.core.errors import HarnessError, StateError, first_line


class Pooler(Protocol):
    """What planned maintenance needs of the pooler (a fake in unit tests)."""

    def paused(self) -> bool: ...

    def pause(self, timeout: float) -> None: ...

    def resume(self) -> None: ...


class PgBouncerAdmin:
    """The admin console of one PgBouncer, reached with an admin user's conninfo; `hint`
    says how to bring that PgBouncer up when it does not answer."""

    def __init__(self, dsn: str, hint: str = "is the lab up? `harness status` shows it") -> None:
        self.dsn = dsn  # dbname=pgbouncer
        self.hint = hint

    def rows(self, command: str) -> list[dict[str, Any]]:
        """One console command on a connection of its own (PAUSE blocks its connection)."""
        try:
            with psycopg.connect(self.dsn, autocommit=True) as conn:
                cursor = conn.execute(command)
                if cursor.description is None:
                    return []
                names = [d.name for d in cursor.description]
                return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
        except psycopg.Error as exc:
            raise HarnessError(
                f"PgBouncer's admin console refused {command}: {first_line(exc)}", self.hint
            ) from exc

    def paused(self) -> bool:
        """SHOW STATE's `paused` line (PgBouncer 1.20+)."""
        return any(r["key"] == "paused" and r["value"] == "yes" for r in self.rows("SHOW STATE"))

    def pause(self, timeout: float) -> None:
        """PAUSE, which returns once every server connection is released. It returns paused,
        or raises with PgBouncer not paused: a transaction held open longer than `timeout`
        makes us shut the PAUSE's socket and RESUME (a cancel request did not free a waiting
        PAUSE here, and psycopg waits for the cancelled query), and so does Ctrl-C."""
        try:
            conn = psycopg.connect(self.dsn, autocommit=True)
        except psycopg.Error as exc:
            raise HarnessError(
                f"PgBouncer's admin console refused the connection: {first_line(exc)}", self.hint
            ) from exc
        failed: list[psycopg.Error] = []

        def run() -> None:
            try:
                conn.execute("PAUSE")
            except psycopg.Error as exc:
                failed.append(exc)

        waiter = threading.Thread(target=run, daemon=True)
        try:
            waiter.start()
            waiter.join(timeout)
        except BaseException:
            self._abandon(conn, waiter)  # Ctrl-C while PgBouncer waits: nothing stays paused
            raise
        if waiter.is_alive():
            self._abandon(conn, waiter)
            raise StateError(
                f"PgBouncer could not pause within {timeout:g} s: a transaction stays open "
                "on one of its server connections; nothing was changed",
                "let long transactions finish (SHOW POOLS on its console), then retry",
            )
        conn.close()
        if failed:
            if "already" in str(failed[0]):  # another PAUSE holds it: not ours to resume
                raise StateError(
                    "PgBouncer is paused already: other planned work is under way",
                    "wait for it to finish; if none is, send RESUME on its admin console",
                ) from failed[0]
            self.resume()
            raise HarnessError(
                f"PgBouncer refused PAUSE: {first_line(failed[0])}",
                "`harness logs pgbouncer` says why",
            ) from failed[0]

    def _abandon(self, conn: psycopg.Connection[object], waiter: threading.Thread) -> None:
        """Shut the socket under a waiting PAUSE (its thread then ends), then RESUME."""
        with contextlib.suppress(OSError), socket.socket(fileno=os.dup(conn.fileno())) as sock:
            sock.shutdown(socket.SHUT_RDWR)
        waiter.join(5)
        with contextlib.suppress(psycopg.Error):
            conn.close()
        self.resume()

    def resume(self) -> None:
        """RESUME; PgBouncer refuses it when not paused, which is what we wanted anyway."""
        try:
            self.rows("RESUME")
        except HarnessError as exc:
            if "not paused" not in exc.message:
                raise
