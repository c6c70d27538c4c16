"""What one faultproxy hop with no toxics costs: round-trip latency (p50/p99) and throughput,
against a direct connection to the same echo server. Printed, never asserted.

    python -m benchmarks.faultproxy_hop [--round-trips 5000] [--megabytes 200]

The proxy runs in its own process, as in the stack; uvloop is used when installed (the
stack's image has Debian's python3-uvloop).
"""

from __future__ import annotations

import argparse
import socket
import statistics
import subprocess
import sys
import threading
import time

import httpx

from tests.faultproxy.conftest import EchoHandler, Server, SinkHandler, free_address


def round_trips(address: str, count: int) -> list[float]:
    host, port = address.rsplit(":", 1)
    with socket.create_connection((host, int(port))) as sock:
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        samples = []
        for _ in range(count):
            start = time.perf_counter()
            sock.sendall(b"x" * 64)
            received = 0
            while received < 64:
                received += len(sock.recv(64))
            samples.append(time.perf_counter() - start)
    return samples[count // 10 :]  # drop warm-up


def throughput(address: str, megabytes: int) -> float:
    host, port = address.rsplit(":", 1)
    block = b"x" * (1 << 20)
    with socket.create_connection((host, int(port))) as sock:
        start = time.perf_counter()
        for _ in range(megabytes):
            sock.sendall(block)
        sock.shutdown(socket.SHUT_WR)
        sock.recv(1)  # the sink's reply, or (via the proxy, as via Toxiproxy) the close
        return megabytes / (time.perf_counter() - start)


def percentile(samples: list[float], q: float) -> float:
    return statistics.quantiles(samples, n=100)[int(q) - 1] * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--round-trips", type=int, default=5000)
    parser.add_argument("--megabytes", type=int, default=200)
    args = parser.parse_args()

    echo = Server(("127.0.0.1", 0), EchoHandler)
    sink = Server(("127.0.0.1", 0), SinkHandler)
    for server in (echo, sink):
        threading.Thread(target=server.serve_forever, daemon=True).start()
    api_address = free_address()
    host, port = api_address.rsplit(":", 1)
    proxy = subprocess.Popen([sys.executable, "-m", "faultproxy", "--host", host, "--port", port])
    try:
        api = httpx.Client(base_url=f"http://{api_address}", timeout=5)
        deadline = time.monotonic() + 10
        while True:
            try:
                api.get("/version")
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        direct = {
            "echo": f"127.0.0.1:{echo.server_address[1]}",
            "sink": f"127.0.0.1:{sink.server_address[1]}",
        }
        via = {
            name: api.post(
                "/proxies", json={"name": name, "listen": "127.0.0.1:0", "upstream": up}
            ).json()["listen"]
            for name, up in direct.items()
        }
        rows = []
        for label, addresses in (("direct", direct), ("via faultproxy", via)):
            samples = round_trips(addresses["echo"], args.round_trips)
            rows.append(
                (
                    label,
                    percentile(samples, 50),
                    percentile(samples, 99),
                    throughput(addresses["sink"], args.megabytes),
                )
            )
        print(f"{'path':<16} {'p50 RTT µs':>11} {'p99 RTT µs':>11} {'MB/s':>8}")
        for label, p50, p99, rate in rows:
            print(f"{label:<16} {p50:11.0f} {p99:11.0f} {rate:8.0f}")
        (_, d50, d99, drate), (_, v50, v99, vrate) = rows
        print(
            f"added by one hop: p50 {v50 - d50:.0f} µs, p99 {v99 - d99:.0f} µs, "
            f"throughput {100 * vrate / drate:.0f}% of direct"
        )
    finally:
        proxy.terminate()
        proxy.wait(10)


if __name__ == "__main__":
    main()
