"""The PAUSE deadline against a stand-in console that never finishes a PAUSE: the pause is
given up within the deadline and RESUME follows, so nothing stays paused."""

from __future__ import annotations

import socketserver
import struct
import threading
import time
from collections.abc import Iterator
from typing import ClassVar

import pytest

from harness.clients.pgbouncer import PgBouncerAdmin
from harness.core.errors import StateError


def message(kind: bytes, body: bytes) -> bytes:
    return kind + struct.pack("!I", len(body) + 4) + body


class Console(socketserver.BaseRequestHandler):
    """Just enough of the protocol: startup without a password, then queries; PAUSE never
    answers, anything else completes."""

    queries: ClassVar[list[str]] = []

    def handle(self) -> None:
        sock = self.request
        while True:  # SSL / GSS requests, then the startup message
            length = struct.unpack("!I", self._read(4))[0]
            body = self._read(length - 4)
            if length == 8:
                sock.sendall(b"N")
                continue
            break
        sock.sendall(
            message(b"R", struct.pack("!I", 0))
            + message(b"K", struct.pack("!II", 1, 2))
            + message(b"Z", b"I")
        )
        del body
        while True:
            kind = self._read(1)
            if not kind or kind == b"X":
                return
            length = struct.unpack("!I", self._read(4))[0]
            query = self._read(length - 4).rstrip(b"\0").decode()
            self.queries.append(query)
            if query == "PAUSE":
                self._read(1)  # waits until the client goes away
                return
            sock.sendall(message(b"C", query.encode() + b"\0") + message(b"Z", b"I"))

    def _read(self, n: int) -> bytes:
        data = b""
        while len(data) < n:
            chunk = self.request.recv(n - len(data))
            if not chunk:
                return data
            data += chunk
        return data


@pytest.fixture
def console() -> Iterator[int]:
    Console.queries = []
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), Console)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_pause_that_never_completes_is_given_up_and_resumed(console: int) -> None:
    admin = PgBouncerAdmin(f"host=127.0.0.1 port={console} user=postgres dbname=pgbouncer")
    start = time.monotonic()
    with pytest.raises(StateError, match=r"could not pause within 0\.5 s"):
        admin.pause(0.5)
    assert time.monotonic() - start < 5
    assert Console.queries == ["PAUSE", "RESUME"]
