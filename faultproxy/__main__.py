"""`python -m faultproxy`: serve the Toxiproxy API and, optionally, proxies from a config file."""

from __future__ import annotations

import argparse
import asyncio
import signal
from pathlib import Path

from faultproxy import VERSION
from faultproxy.api import Api
from faultproxy.proxy import ProxyCollection


async def populate_from(collection: ProxyCollection, config: Path) -> None:
    """ApiServer.PopulateConfig: a config file that cannot be read or applied is reported, and
    the API is served all the same."""
    try:
        body = config.read_bytes()
    except OSError as exc:
        print(f"faultproxy: error reading config file {config}: {exc}", flush=True)
        return
    done = await collection.populate(body)
    if done.error is not None:
        print(f"faultproxy: failed to populate proxies from file: {done.error}", flush=True)


async def serve(host: str, port: int, config: Path | None) -> None:
    collection = ProxyCollection()
    if config is not None:
        await populate_from(collection, config)
    api = Api(collection)
    server = await asyncio.start_server(api.serve_connection, host, port, reuse_address=True)
    print(
        f"faultproxy {VERSION}: API on {host}:{port}, {len(collection.proxies)} proxies", flush=True
    )
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="A Toxiproxy-compatible fault proxy.")
    parser.add_argument("--host", default="127.0.0.1", help="API listen address")
    parser.add_argument("--port", type=int, default=8474, help="API port (Toxiproxy's default)")
    parser.add_argument("--config", type=Path, help="JSON list of proxies to create at start")
    args = parser.parse_args()
    try:
        import uvloop  # type: ignore[import-not-found]

        uvloop.install()
    except ImportError:
        pass
    asyncio.run(serve(args.host, args.port, args.config))


if __name__ == "__main__":
    main()
