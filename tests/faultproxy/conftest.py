"""A real faultproxy server in a background thread, real TCP upstreams on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass

import httpx
import pytest
from toxiproxy.api import APIConsumer  # type: ignore[import-untyped]

from faultproxy.api import Api
from faultproxy.proxy import ProxyCollection

BLOB_SIZE = 500_000


class EchoHandler(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with contextlib.suppress(ConnectionResetError):  # reset_peer resets both sides
            while data := self.request.recv(65536):
                self.request.sendall(data)


class BlobHandler(socketserver.BaseRequestHandler):
    """Sends BLOB_SIZE bytes, then closes: a download to time."""

    def handle(self) -> None:
        self.request.sendall(b"x" * BLOB_SIZE)


class SinkHandler(socketserver.BaseRequestHandler):
    """Reads until the client's end of stream, then answers b"k": a reply after a half-close."""

    def handle(self) -> None:
        with contextlib.suppress(ConnectionError):
            while self.request.recv(1 << 20):
                pass
            self.request.sendall(b"k")


class Server(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True


@dataclass
class Upstreams:
    echo: str
    blob: str
    sink: str


@dataclass
class ProxyServer:
    url: str
    port: int
    loop: asyncio.AbstractEventLoop
    http: httpx.Client


def free_address() -> str:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"127.0.0.1:{probe.getsockname()[1]}"


@pytest.fixture(scope="session")
def upstreams() -> Iterator[Upstreams]:
    servers = [Server(("127.0.0.1", 0), h) for h in (EchoHandler, BlobHandler, SinkHandler)]
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    echo, blob, sink = (f"127.0.0.1:{s.server_address[1]}" for s in servers)
    yield Upstreams(echo=echo, blob=blob, sink=sink)
    for server in servers:
        server.shutdown()


@pytest.fixture(scope="session")
def proxy_server() -> Iterator[ProxyServer]:
    loop = asyncio.new_event_loop()
    api = Api(ProxyCollection())
    started = threading.Event()
    port: list[int] = []

    async def start() -> None:
        server = await asyncio.start_server(api.serve_connection, "127.0.0.1", 0)
        port.append(server.sockets[0].getsockname()[1])
        started.set()

    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    asyncio.run_coroutine_threadsafe(start(), loop)
    assert started.wait(5)
    APIConsumer.host, APIConsumer.port = "127.0.0.1", port[0]
    with httpx.Client(base_url=f"http://127.0.0.1:{port[0]}", timeout=5) as http:
        yield ProxyServer(f"http://127.0.0.1:{port[0]}", port[0], loop, http)

    async def shutdown() -> None:
        tasks = asyncio.all_tasks() - {asyncio.current_task()}
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    asyncio.run_coroutine_threadsafe(shutdown(), loop).result(5)
    loop.call_soon_threadsafe(loop.stop)


@pytest.fixture
def api(proxy_server: ProxyServer) -> Iterator[httpx.Client]:
    """The raw HTTP API, emptied after each test."""
    yield proxy_server.http
    for name in list(proxy_server.http.get("/proxies").json()):
        proxy_server.http.delete(f"/proxies/{name}")


def connect(listen: str, timeout: float = 5) -> socket.socket:
    """A client connection to a proxy's listen address (`host:port`, `[v6]:port`)."""
    host, port = listen.rsplit(":", 1)
    return socket.create_connection((host.strip("[]"), int(port)), timeout=timeout)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    """Seconds for `payload` to come back from the echo upstream."""
    start = time.monotonic()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed during a round trip"
        received += chunk
    assert received == payload
    return time.monotonic() - start


def exchange(port: int, request: bytes, timeout: float = 5) -> bytes:
    """Raw HTTP: sends `request` to the API and returns everything until the server closes."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(request)
        response = b""
        while chunk := sock.recv(65536):
            response += chunk
        return response
