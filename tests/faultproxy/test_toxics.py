"""Each toxic's measurable effect on real TCP traffic, driven with toxiproxy-python.

Tolerances are generous (a 2-core machine under load); every assert can still fail
when a toxic does nothing or the wrong thing.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator

import httpx
import pytest
from toxiproxy import Toxiproxy  # type: ignore[import-untyped]
from toxiproxy.proxy import Proxy  # type: ignore[import-untyped]

from tests.faultproxy.conftest import BLOB_SIZE, Upstreams


@pytest.fixture
def echo(api: httpx.Client, upstreams: Upstreams) -> Iterator[Proxy]:
    yield Toxiproxy().create(upstream=upstreams.echo, name="echo")


@pytest.fixture
def blob(api: httpx.Client, upstreams: Upstreams) -> Iterator[Proxy]:
    yield Toxiproxy().create(upstream=upstreams.blob, name="blob")


def connect(proxy: Proxy, timeout: float = 5) -> socket.socket:
    host, port = proxy.listen.rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=timeout)


def round_trip(sock: socket.socket, payload: bytes = b"ping") -> float:
    start = time.monotonic()
    sock.sendall(payload)
    received = b""
    while len(received) < len(payload):
        chunk = sock.recv(65536)
        assert chunk, "connection closed during a round trip"
        received += chunk
    assert received == payload
    return time.monotonic() - start


def download(proxy: Proxy) -> tuple[int, float]:
    with connect(proxy, timeout=10) as sock:
        start, total = time.monotonic(), 0
        while chunk := sock.recv(65536):
            total += len(chunk)
        return total, time.monotonic() - start


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_adds_its_delay_on_either_stream(echo: Proxy, stream: str) -> None:
    with connect(echo) as sock:
        base = min(round_trip(sock) for _ in range(3))
        echo.add_toxic(type="latency", stream=stream, attributes={"latency": 100})
        slowed = [round_trip(sock) for _ in range(3)]
    assert base < 0.05
    assert all(0.095 <= t <= 0.25 for t in slowed), slowed


def test_jitter_varies_the_delay_within_its_bounds(echo: Proxy) -> None:
    echo.add_toxic(type="latency", attributes={"latency": 60, "jitter": 40})
    with connect(echo) as sock:
        delays = [round_trip(sock) for _ in range(12)]
    assert all(0.015 <= t <= 0.2 for t in delays), delays
    assert max(delays) - min(delays) > 0.02  # it does vary


def test_bandwidth_limits_the_rate(blob: Proxy) -> None:
    unlimited_total, unlimited = download(blob)
    blob.add_toxic(type="bandwidth", attributes={"rate": 500})  # KB/s
    total, seconds = download(blob)
    assert unlimited_total == total == BLOB_SIZE
    assert unlimited < 0.5
    assert 0.8 <= seconds <= 1.6, seconds  # 500 KB at 500 KB/s: ~1 s


def test_timeout_zero_drops_data_until_removed(echo: Proxy) -> None:
    with connect(echo, timeout=0.5) as sock:
        echo.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
        sock.sendall(b"lost")
        with pytest.raises(TimeoutError):
            sock.recv(16)
        echo.destroy_toxic("timeout_upstream")
        assert round_trip(sock, b"after") < 0.4


def test_timeout_closes_the_connection_after_its_delay(echo: Proxy) -> None:
    echo.add_toxic(type="timeout", attributes={"timeout": 300})
    with connect(echo) as sock:
        start = time.monotonic()
        sock.sendall(b"x")
        assert sock.recv(16) == b""  # closed, nothing delivered
        assert 0.25 <= time.monotonic() - start <= 1.0


@pytest.mark.parametrize("delay_ms", [0, 200])
def test_reset_peer_resets_the_connection(echo: Proxy, delay_ms: int) -> None:
    echo.add_toxic(type="reset_peer", attributes={"timeout": delay_ms})
    start = time.monotonic()
    # An immediate reset can reach the client while it is still connecting; a later one
    # on a read. Either way it must be a reset, and within the window.
    with pytest.raises(ConnectionResetError), connect(echo) as sock:
        while sock.recv(16) or True:
            time.sleep(0.01)
    assert delay_ms / 1000 - 0.05 <= time.monotonic() - start <= delay_ms / 1000 + 0.5


def test_limit_data_closes_after_n_bytes(echo: Proxy) -> None:
    echo.add_toxic(type="limit_data", attributes={"bytes": 10})
    with connect(echo) as sock:
        sock.sendall(b"0123456789abcdefghij")
        received = b""
        while chunk := sock.recv(64):
            received += chunk
    assert received == b"0123456789"


def test_slicer_splits_writes_and_spaces_them(echo: Proxy) -> None:
    echo.add_toxic(
        type="slicer", attributes={"average_size": 10, "size_variation": 0, "delay": 20_000}
    )
    with connect(echo) as sock:
        start = time.monotonic()
        sock.sendall(b"x" * 100)
        pieces: list[int] = []
        while sum(pieces) < 100:
            pieces.append(len(sock.recv(100)))
    assert len(pieces) >= 5, pieces
    assert time.monotonic() - start >= 0.15  # nine 20 ms gaps


def test_slow_close_delays_the_close(blob: Proxy) -> None:
    _, quick = download(blob)
    blob.add_toxic(type="slow_close", attributes={"delay": 400})
    total, slowed = download(blob)
    assert total == BLOB_SIZE
    assert slowed - quick >= 0.35


def test_toxicity_zero_never_applies_and_one_always_does(echo: Proxy) -> None:
    echo.add_toxic(type="latency", name="never", toxicity=0.0, attributes={"latency": 200})
    with connect(echo) as sock:
        assert round_trip(sock) < 0.1
    echo.destroy_toxic("never")
    echo.add_toxic(type="latency", name="always", toxicity=1.0, attributes={"latency": 200})
    with connect(echo) as sock:
        assert round_trip(sock) >= 0.19


def test_toxicity_is_decided_per_connection(echo: Proxy) -> None:
    echo.add_toxic(type="latency", toxicity=0.5, attributes={"latency": 150})
    outcomes = set()
    for _ in range(24):
        with connect(echo) as sock:
            first, second = round_trip(sock), round_trip(sock)
        slowed = first >= 0.14
        assert slowed == (second >= 0.14)  # the same decision for a connection's whole life
        outcomes.add(slowed)
    assert outcomes == {True, False}


def test_client_library_round_trip(echo: Proxy, api: httpx.Client) -> None:
    server = Toxiproxy()
    assert b"version" in server.version()
    echo.add_toxic(type="bandwidth", name="thin", attributes={"rate": 10})
    assert set(echo.toxics()) == {"thin"}
    with echo.down(), pytest.raises(ConnectionRefusedError):
        connect(echo, timeout=1)
    assert api.get("/proxies/echo").json()["enabled"] is True
    server.reset()
    assert echo.toxics() == {}
    assert set(server.proxies()) == {"echo"}
