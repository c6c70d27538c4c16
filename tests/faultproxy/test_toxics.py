"""Each toxic's measurable effect on real TCP traffic, driven with toxiproxy-python.

Tolerances are generous (a 2-core machine under load); every assert can still fail
when a toxic does nothing or the wrong thing.
"""

from __future__ import annotations

import socket
import statistics
import time
from collections.abc import Iterator

import httpx
import pytest
from toxiproxy import Toxiproxy  # type: ignore[import-untyped]
from toxiproxy.proxy import Proxy  # type: ignore[import-untyped]

from tests.faultproxy.conftest import BLOB_SIZE, Upstreams, connect, round_trip


@pytest.fixture
def echo(api: httpx.Client, upstreams: Upstreams) -> Iterator[Proxy]:
    yield Toxiproxy().create(upstream=upstreams.echo, name="echo")


@pytest.fixture
def blob(api: httpx.Client, upstreams: Upstreams) -> Iterator[Proxy]:
    yield Toxiproxy().create(upstream=upstreams.blob, name="blob")


def download(proxy: Proxy) -> tuple[int, float]:
    with connect(proxy.listen, timeout=10) as sock:
        start, total = time.monotonic(), 0
        while chunk := sock.recv(65536):
            total += len(chunk)
        return total, time.monotonic() - start


@pytest.mark.parametrize("stream", ["downstream", "upstream"])
def test_latency_adds_its_delay_on_either_stream(echo: Proxy, stream: str) -> None:
    with connect(echo.listen) as sock:
        base = min(round_trip(sock) for _ in range(3))
        echo.add_toxic(type="latency", stream=stream, attributes={"latency": 100})
        slowed = [round_trip(sock) for _ in range(3)]
    assert base < 0.05
    assert all(0.095 <= t <= 0.25 for t in slowed), slowed


def test_jitter_varies_the_delay_within_its_bounds(echo: Proxy) -> None:
    echo.add_toxic(type="latency", attributes={"latency": 60, "jitter": 40})
    with connect(echo.listen) as sock:
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


def test_timeout_zero_drops_data_and_removing_it_closes_the_connection(echo: Proxy) -> None:
    """TimeoutToxic drops data; its Cleanup closes the stub when it is removed, which ends
    the connection (toxics/timeout_test.go, TestTimeoutToxicClosesConnectionOnRemove)."""
    with connect(echo.listen, timeout=0.5) as sock:
        echo.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 0})
        sock.sendall(b"lost")
        with pytest.raises(TimeoutError):
            sock.recv(16)
        echo.destroy_toxic("timeout_upstream")
        sock.settimeout(2)
        assert sock.recv(16) == b""
    with connect(echo.listen) as sock:
        assert round_trip(sock, b"after") < 0.4


def test_timeout_closes_the_connection_after_its_delay(echo: Proxy) -> None:
    echo.add_toxic(type="timeout", attributes={"timeout": 300})
    with connect(echo.listen) as sock:
        start = time.monotonic()
        sock.sendall(b"x")
        assert sock.recv(16) == b""  # closed, nothing delivered
        assert 0.25 <= time.monotonic() - start <= 1.0


@pytest.mark.parametrize("delay_ms", [0, 200])
def test_reset_peer_resets_the_connection(echo: Proxy, delay_ms: int) -> None:
    """ResetToxic waits for the first chunk on its stream (dropped), then `timeout` ms, then
    closes; SO_LINGER 0, set as the connection was accepted, makes that a reset."""
    echo.add_toxic(type="reset_peer", attributes={"timeout": delay_ms})
    with connect(echo.listen) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")  # echoed: the first chunk downstream
        with pytest.raises(ConnectionResetError):
            while sock.recv(16) or True:
                time.sleep(0.01)
    assert delay_ms / 1000 - 0.05 <= time.monotonic() - start <= delay_ms / 1000 + 0.5


def test_reset_peer_waits_for_data(echo: Proxy) -> None:
    echo.add_toxic(type="reset_peer", attributes={"timeout": 0})
    with connect(echo.listen, timeout=0.6) as sock, pytest.raises(TimeoutError):
        sock.recv(16)  # nothing flows downstream: nothing is reset


def test_reset_peer_on_an_older_connection_closes_it_without_a_reset(echo: Proxy) -> None:
    """ToxicLink.AddToxic does not set SO_LINGER: added to a live connection, reset_peer ends it
    with an ordinary close."""
    with connect(echo.listen) as sock:
        round_trip(sock)
        echo.add_toxic(type="reset_peer", attributes={"timeout": 0})
        sock.sendall(b"ping")
        assert sock.recv(16) == b""


def test_limit_data_closes_after_n_bytes(echo: Proxy) -> None:
    echo.add_toxic(type="limit_data", attributes={"bytes": 10})
    with connect(echo.listen) as sock:
        sock.sendall(b"0123456789abcdefghij")
        received = b""
        while chunk := sock.recv(64):
            received += chunk
    assert received == b"0123456789"


def test_slow_close_delays_the_close(blob: Proxy) -> None:
    _, quick = download(blob)
    blob.add_toxic(type="slow_close", attributes={"delay": 400})
    total, slowed = download(blob)
    assert total == BLOB_SIZE
    assert slowed - quick >= 0.35


def test_toxicity_zero_never_applies_and_one_always_does(echo: Proxy) -> None:
    echo.add_toxic(type="latency", name="never", toxicity=0.0, attributes={"latency": 200})
    with connect(echo.listen) as sock:
        assert round_trip(sock) < 0.1
    echo.destroy_toxic("never")
    echo.add_toxic(type="latency", name="always", toxicity=1.0, attributes={"latency": 200})
    with connect(echo.listen) as sock:
        assert round_trip(sock) >= 0.19


def test_toxicity_is_decided_per_connection(echo: Proxy) -> None:
    echo.add_toxic(type="latency", toxicity=0.5, attributes={"latency": 150})
    outcomes = set()
    for _ in range(24):
        with connect(echo.listen) as sock:
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
        connect(echo.listen, timeout=1)
    assert api.get("/proxies/echo").json()["enabled"] is True
    server.reset()
    assert echo.toxics() == {}
    assert set(server.proxies()) == {"echo"}


def test_latencies_in_a_chain_add_up(echo: Proxy) -> None:
    """Each latency toxic delays a chunk from its stamp and then advances the stamp by what it
    slept (toxics/latency.go), so two 100 ms latencies delay by 200 ms, not 100."""
    echo.add_toxic(type="latency", name="first", attributes={"latency": 100})
    echo.add_toxic(type="latency", name="second", attributes={"latency": 100})
    with connect(echo.listen) as sock:
        delays = [round_trip(sock) for _ in range(3)]
    assert all(0.19 <= t <= 0.45 for t in delays), delays


def test_latency_delays_each_chunk_from_its_own_arrival(echo: Proxy) -> None:
    """The latency toxic takes in chunks while it waits (GetBufferSize 1024), so a chunk sent
    300 ms after another leaves 600 ms after it was sent too, not 600 ms after the first left:
    a latency does not throttle a stream."""
    echo.add_toxic(type="latency", attributes={"latency": 600})
    with connect(echo.listen) as sock:
        sent = [time.monotonic()]
        sock.sendall(b"one!")
        time.sleep(0.3)
        sent.append(time.monotonic())
        sock.sendall(b"two!")
        delays = []
        for expected, at in zip((b"one!", b"two!"), sent, strict=True):
            assert sock.recv(4, socket.MSG_WAITALL) == expected
            delays.append(time.monotonic() - at)
    assert all(0.55 <= d <= 0.8 for d in delays), delays  # queued behind the first: 0.9 s


def test_bandwidth_holds_data_for_its_transmission_time(echo: Proxy) -> None:
    """BandwidthToxic waits before it passes data on: 500 bytes at 2 KB/s leave in 200-byte
    pieces every 100 ms and the rest after 50 ms, the first only after 100 ms."""
    echo.add_toxic(type="bandwidth", attributes={"rate": 2})
    with connect(echo.listen) as sock:
        start = time.monotonic()
        sock.sendall(b"x" * 500)
        first = len(sock.recv(1000))
        first_at = time.monotonic() - start
        received = first
        while received < 500:
            received += len(sock.recv(1000))
        total = time.monotonic() - start
    assert first_at >= 0.09 and first <= 200, (first_at, first)
    assert 0.24 <= total <= 0.8, total


def test_slicer_halves_chunks_around_the_average(echo: Proxy) -> None:
    """SlicerToxic.chunk halves 100 bytes until each part is within size_variation of
    average_size: 16 parts of 6 or 7 bytes for 10, a delay after each."""
    echo.add_toxic(
        type="slicer", attributes={"average_size": 10, "size_variation": 0, "delay": 20_000}
    )
    with connect(echo.listen) as sock:
        start = time.monotonic()
        sock.sendall(b"x" * 100)
        pieces: list[int] = []
        while sum(pieces) < 100:
            pieces.append(len(sock.recv(100)))
        elapsed = time.monotonic() - start
    assert len(pieces) >= 12 and statistics.median(pieces) <= 7, pieces
    assert elapsed >= 0.28, elapsed  # 15 gaps of 20 ms before the last part


def test_limit_data_counts_from_when_it_was_added(echo: Proxy) -> None:
    """LimitDataToxic counts what it passed itself, on each link from when it was added."""
    with connect(echo.listen) as sock:
        round_trip(sock, b"x" * 20)
        echo.add_toxic(type="limit_data", attributes={"bytes": 10})
        sock.sendall(b"0123456789abcde")
        received = b""
        while chunk := sock.recv(64):
            received += chunk
    assert received == b"0123456789"


def test_timeout_restarts_with_each_chunk(echo: Proxy) -> None:
    """TimeoutToxic waits `timeout` ms afresh after each chunk it drops."""
    echo.add_toxic(type="timeout", stream="upstream", attributes={"timeout": 300})
    with connect(echo.listen, timeout=2) as sock:
        for _ in range(6):  # 600 ms of chunks, 100 ms apart: never 300 ms without one
            sock.sendall(b"x")
            time.sleep(0.1)
        last = time.monotonic()
        assert sock.recv(16) == b""
        assert 0.15 <= time.monotonic() - last <= 0.8


def test_an_update_releases_the_chunk_a_latency_holds(echo: Proxy, api: httpx.Client) -> None:
    """An update interrupts the toxic, which passes on what it holds at once, then runs with
    its new settings."""
    echo.add_toxic(type="latency", attributes={"latency": 2000})
    with connect(echo.listen) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        time.sleep(0.1)
        api.patch("/proxies/echo/toxics/latency_downstream", json={"attributes": {"latency": 0}})
        assert sock.recv(16) == b"ping"
        assert time.monotonic() - start < 1
        assert round_trip(sock) < 0.5


def test_removing_a_latency_releases_what_it_holds(echo: Proxy) -> None:
    echo.add_toxic(type="latency", attributes={"latency": 2000})
    with connect(echo.listen) as sock:
        start = time.monotonic()
        sock.sendall(b"ping")
        time.sleep(0.1)
        echo.destroy_toxic("latency_downstream")
        assert sock.recv(16) == b"ping"
        assert time.monotonic() - start < 1


def test_reset_closes_connections_through_a_timeout_toxic(echo: Proxy, api: httpx.Client) -> None:
    """POST /reset removes every toxic; a timeout toxic's removal ends its connections."""
    with connect(echo.listen, timeout=2) as sock:
        round_trip(sock)
        echo.add_toxic(type="timeout", attributes={"timeout": 0})
        api.post("/reset")
        assert sock.recv(16) == b""


def test_a_half_close_closes_the_connection(api: httpx.Client, upstreams: Upstreams) -> None:
    """ToxicLink.write closes its destination when its stream ends: a client's half-close
    closes the upstream connection, so a reply sent after it never comes."""
    sink = Toxiproxy().create(upstream=upstreams.sink, name="sink")
    host, port = upstreams.sink.rsplit(":", 1)
    for address in (f"{host}:{port}", sink.listen):
        with connect(address) as sock:
            sock.sendall(b"request")
            sock.shutdown(socket.SHUT_WR)
            replies = [sock.recv(16)]
        assert replies == ([b"k"] if address == upstreams.sink else [b""])


def test_the_upstream_dial_has_no_deadline_of_its_own(api: httpx.Client) -> None:
    """Proxy.server dials upstream with net.Dial: the client waits for as long as the OS tries
    to connect (here, to a listener whose queue is full), not 5 s."""
    with socket.socket() as full:
        full.bind(("127.0.0.1", 0))
        full.listen(0)
        host, port = full.getsockname()
        queued = socket.create_connection((host, port))
        proxy = Toxiproxy().create(upstream=f"{host}:{port}", name="stuck")
        with queued, connect(proxy.listen, timeout=5.5) as sock, pytest.raises(TimeoutError):
            sock.recv(16)
