"""Proxies and their links: a listener per proxy, and per accepted connection a Link that
pipes both directions through the proxy's toxics."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import socket
import struct
from collections.abc import Iterable
from typing import Any

from faultproxy.errors import (
    MISSING_FIELD,
    PROXY_EXISTS,
    PROXY_NOT_FOUND,
    TOXIC_EXISTS,
    TOXIC_NOT_FOUND,
    ApiError,
)
from faultproxy.toxics import Toxic

READ_SIZE = 65536
UPSTREAM_CONNECT_TIMEOUT = 5.0


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    if not port.isdigit():
        raise ApiError(f"invalid address {address!r}: expected host:port", 400)
    return host or "0.0.0.0", int(port)


class Link:
    """One client connection and its connection upstream."""

    def __init__(
        self,
        proxy: Proxy,
        client: tuple[asyncio.StreamReader, asyncio.StreamWriter],
        server: tuple[asyncio.StreamReader, asyncio.StreamWriter],
    ) -> None:
        self.proxy = proxy
        self.client = client
        self.server = server
        self.sent = {"upstream": 0, "downstream": 0}
        self.closed = False
        self._decisions: dict[str, tuple[int, bool]] = {}
        self._timers: dict[str, tuple[int, asyncio.Task[None]]] = {}

    def applies(self, toxic: Toxic) -> bool:
        decided = self._decisions.get(toxic.name)
        if decided is None or decided[0] != toxic.version:
            decided = (toxic.version, toxic.decide())
            self._decisions[toxic.name] = decided
        return decided[1]

    def toxics(self, stream: str) -> list[Toxic]:
        return [t for t in self.proxy.toxics.values() if t.stream == stream and self.applies(t)]

    def refresh_timers(self) -> None:
        """Arm timers of timed toxics that apply, disarm those removed or changed."""
        live = {t.name: t for t in self.proxy.toxics.values() if t.timed and self.applies(t)}
        for name, (version, task) in list(self._timers.items()):
            if name not in live or live[name].version != version:
                task.cancel()
                del self._timers[name]
        for name, toxic in live.items():
            if name not in self._timers:
                self._timers[name] = (toxic.version, asyncio.create_task(toxic.run_timer(self)))

    async def run(self) -> None:
        self.refresh_timers()
        try:
            await asyncio.gather(
                self._pipe("upstream", self.client[0], self.server[1]),
                self._pipe("downstream", self.server[0], self.client[1]),
            )
        finally:
            self.close()

    async def _pipe(
        self, stream: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        loop = asyncio.get_running_loop()
        try:
            while not self.closed:
                data = await reader.read(READ_SIZE)
                if not data:
                    break
                chain = self.toxics(stream)
                if not chain:  # the fast path: no toxic on this direction
                    writer.write(data)
                    self.sent[stream] += len(data)
                    await writer.drain()
                else:
                    await self._through(chain, 0, data, writer, stream, loop.time())
            for toxic in self.toxics(stream):
                if toxic.type == "slow_close":
                    await asyncio.sleep(toxic.attributes["delay"] / 1000)
            if not self.closed and writer.can_write_eof():
                writer.write_eof()
        except (ConnectionError, OSError):
            self.close()

    async def _through(
        self,
        chain: list[Toxic],
        index: int,
        data: bytes,
        writer: asyncio.StreamWriter,
        stream: str,
        arrival: float,
    ) -> None:
        if self.closed:
            return
        if index == len(chain):
            writer.write(data)
            self.sent[stream] += len(data)
            await writer.drain()
            return

        async def emit(piece: bytes) -> None:
            await self._through(chain, index + 1, piece, writer, stream, arrival)

        await chain[index].process(data, emit, self, arrival)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        for _, task in self._timers.values():
            task.cancel()
        for _, writer in (self.client, self.server):
            writer.close()
        self.proxy.links.discard(self)

    def reset(self) -> None:
        """Close both sockets with an RST (SO_LINGER 0), as a peer reset would."""
        for _, writer in (self.client, self.server):
            sock = writer.get_extra_info("socket")
            if sock is not None:
                with contextlib.suppress(OSError):
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            writer.transport.abort()
        self.close()


class Proxy:
    def __init__(self, name: str, listen: str, upstream: str, enabled: bool) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = enabled
        self.toxics: dict[str, Toxic] = {}
        self.links: set[Link] = set()
        self._server: asyncio.Server | None = None

    def to_json(self, with_toxics: bool = True) -> dict[str, Any]:
        data: dict[str, Any] = {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
        }
        if with_toxics:
            data["toxics"] = [t.to_json() for t in self.toxics.values()]
        return data

    async def start(self) -> None:
        if self._server is not None:
            return
        host, port = split_address(self.listen)
        try:
            self._server = await asyncio.start_server(self._accept, host, port, reuse_address=True)
        except OSError as exc:
            reason = "address already in use" if exc.errno == errno.EADDRINUSE else exc.strerror
            raise ApiError(f"listen tcp {self.listen}: bind: {reason}", 500) from None
        bound = self._server.sockets[0].getsockname()
        self.listen = f"{host}:{bound[1]}"
        self.enabled = True

    def stop(self) -> None:
        """Stop listening and drop every live connection, as a disabled Toxiproxy proxy does."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links):
            link.close()
        self.enabled = False

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            server = await asyncio.wait_for(
                asyncio.open_connection(*split_address(self.upstream)), UPSTREAM_CONNECT_TIMEOUT
            )
        except (OSError, TimeoutError, ApiError):
            writer.close()
            return
        link = Link(self, (reader, writer), server)
        self.links.add(link)
        await link.run()

    def refresh_links(self) -> None:
        for link in list(self.links):
            link.refresh_timers()

    # -- toxics ------------------------------------------------------------------------------

    def add_toxic(self, data: Any) -> Toxic:
        toxic = Toxic.from_json(data)
        if toxic.name in self.toxics:
            raise TOXIC_EXISTS
        self.toxics[toxic.name] = toxic
        self.refresh_links()
        return toxic

    def toxic(self, name: str) -> Toxic:
        try:
            return self.toxics[name]
        except KeyError:
            raise TOXIC_NOT_FOUND from None

    def update_toxic(self, name: str, data: Any) -> Toxic:
        toxic = self.toxic(name)
        toxic.update(data)
        self.refresh_links()
        return toxic

    def remove_toxic(self, name: str) -> None:
        self.toxic(name)
        del self.toxics[name]
        self.refresh_links()

    def reset_toxics(self) -> None:
        self.toxics.clear()
        self.refresh_links()


class ProxyCollection:
    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise PROXY_NOT_FOUND from None

    async def create(self, data: Any) -> Proxy:
        if not isinstance(data, dict):
            raise MISSING_FIELD.joined("name")
        for required in ("name", "upstream"):
            if not data.get(required):
                raise MISSING_FIELD.joined(required)
        if data["name"] in self.proxies:
            raise PROXY_EXISTS
        proxy = Proxy(
            name=str(data["name"]),
            listen=str(data.get("listen") or "127.0.0.1:0"),
            upstream=str(data["upstream"]),
            enabled=bool(data.get("enabled", True)),
        )
        if proxy.enabled:
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def populate(self, items: Iterable[Any]) -> list[Proxy]:
        """Create or replace: a proxy whose listen or upstream changed is recreated."""
        result = []
        for data in items:
            existing = self.proxies.get(data.get("name", "")) if isinstance(data, dict) else None
            if existing is not None:
                if (existing.listen, existing.upstream) == (
                    data.get("listen"),
                    data.get("upstream"),
                ):
                    result.append(existing)
                    continue
                self.remove(existing.name)
            result.append(await self.create(data))
        return result

    async def update(self, name: str, data: Any) -> Proxy:
        proxy = self.get(name)
        if not isinstance(data, dict):
            raise MISSING_FIELD.joined("body")
        listen = str(data.get("listen", proxy.listen))
        upstream = str(data.get("upstream", proxy.upstream))
        enabled = bool(data.get("enabled", proxy.enabled))
        if (listen, upstream) != (proxy.listen, proxy.upstream) and proxy.enabled:
            proxy.stop()
        proxy.listen, proxy.upstream = listen, upstream
        if enabled:
            await proxy.start()
        else:
            proxy.stop()
        return proxy

    def remove(self, name: str) -> None:
        self.get(name).stop()
        del self.proxies[name]

    async def reset(self) -> None:
        for proxy in self.proxies.values():
            await proxy.start()
            proxy.reset_toxics()
