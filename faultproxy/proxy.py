"""Proxies and the collection of them, as Toxiproxy 2.12's proxy.go and proxy_collection.go."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from faultproxy import gojson
from faultproxy.address import AddressError, bound, listen, resolve
from faultproxy.errors import (
    MISSING_FIELD,
    PROXY_EXISTS,
    PROXY_NOT_FOUND,
    TOXIC_NOT_FOUND,
    ApiError,
)
from faultproxy.link import Link
from faultproxy.toxics import DIRECTIONS, Toxic

PROXY: Mapping[str, gojson.GoType] = {
    "name": "string",
    "listen": "string",
    "upstream": "string",
    "enabled": "bool",
}
PROXY_TYPE = "Go value of type toxiproxy.Proxy"
POPULATE_ENTRY = 'struct { toxiproxy.Proxy; Enabled *bool "json:\\"enabled\\"" }'


def server_error(exc: Exception) -> ApiError:
    """An error without a status of its own: Toxiproxy answers it as a 500 (apiError)."""
    return ApiError(str(exc), 500)


class Proxy:
    """A listener and its connections. `listen` is the address bound while enabled, else the
    address as given; `toxics` keeps the order toxics were added, each direction's chain."""

    def __init__(self, name: str, listen: str, upstream: str) -> None:
        self.name = name
        self.listen = listen
        self.upstream = upstream
        self.enabled = False
        self.toxics: dict[str, Toxic] = {}
        self.links: set[Link] = set()
        self._server: asyncio.Server | None = None

    def to_json(self) -> dict[str, Any]:
        """proxyWithToxics: the proxy and its toxics."""
        return {
            "name": self.name,
            "listen": self.listen,
            "upstream": self.upstream,
            "enabled": self.enabled,
            "toxics": self.toxics_json(),
        }

    def toxics_json(self) -> list[dict[str, Any]]:
        """GetToxicArray: the upstream chain, then the downstream one."""
        return [t.to_json() for d in DIRECTIONS for t in self.toxics.values() if t.direction == d]

    async def start(self) -> None:
        """Proxy.start: listen, and report the address bound; a proxy already started stays."""
        if self.enabled:
            return
        try:
            sock = await listen(self.listen)
        except AddressError as exc:
            raise server_error(exc) from None
        self._server = await asyncio.start_server(self._accept, sock=sock)
        self.listen = bound(sock)
        self.enabled = True

    def stop(self) -> None:
        """Proxy.stop: stop listening and close every connection."""
        if self._server is not None:
            self._server.close()
            self._server = None
        for link in list(self.links):
            link.close()
        self.enabled = False

    async def differs(self, listen: str, upstream: str) -> bool:
        """Proxy.Differs: another upstream, or a listen address resolving to another one."""
        try:
            wanted = await resolve(listen)
        except AddressError as exc:
            raise server_error(exc) from None
        return self.listen != str(wanted) or self.upstream != upstream

    async def update(self, listen: str, upstream: str, enabled: bool) -> None:
        """Proxy.Update: restart on a new address, then start or stop as asked."""
        if await self.differs(listen, upstream):
            self.stop()
            self.listen, self.upstream = listen, upstream
        if enabled != self.enabled:
            if enabled:
                await self.start()
            else:
                self.stop()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        link = Link(self, (reader, writer))
        self.links.add(link)
        link.start()

    # -- toxics (ToxicCollection) ----------------------------------------------------------

    def toxic(self, name: str) -> Toxic:
        try:
            return self.toxics[name]
        except KeyError:
            raise TOXIC_NOT_FOUND from None

    def add_toxic(self, body: bytes) -> Toxic:
        toxic = Toxic.create(body, self.toxics)
        self.toxics[toxic.name] = toxic
        for link in self.links:
            link.add(toxic)
        return toxic

    def update_toxic(self, name: str, body: bytes) -> Toxic:
        toxic = self.toxic(name)
        toxic.update(body)
        for link in self.links:
            link.update(toxic)
        return toxic

    def remove_toxic(self, name: str) -> None:
        toxic = self.toxic(name)
        del self.toxics[name]
        for link in list(self.links):
            link.remove(toxic)

    def reset_toxics(self) -> None:
        for name in list(self.toxics):
            self.remove_toxic(name)


@dataclass
class Populated:
    """What POST /populate did: the proxies it went through, and the error it stopped at."""

    proxies: list[Proxy]
    error: ApiError | None = None


def populate_entries(body: bytes) -> list[dict[str, Any]]:
    """The entries of a populate request, each with a name and an upstream, or the first error:
    Go's, or `missing required field: name at proxy 2` (numbered from 1)."""
    entries = gojson.read(body)
    if entries is not None and not isinstance(entries, list):
        raise gojson.mismatch(entries, f"Go value of type []{POPULATE_ENTRY}")
    wanted = []
    for number, entry in enumerate(entries or [], start=1):
        given = gojson.fields(entry, PROXY, ".", f"Go value of type {POPULATE_ENTRY}")
        for required in ("name", "upstream"):
            if not given.get(required):
                raise MISSING_FIELD.joined(f"{required} at proxy {number}")
        wanted.append(given)
    return wanted


class ProxyCollection:
    def __init__(self) -> None:
        self.proxies: dict[str, Proxy] = {}

    def get(self, name: str) -> Proxy:
        try:
            return self.proxies[name]
        except KeyError:
            raise PROXY_NOT_FOUND from None

    async def create(self, body: bytes) -> Proxy:
        """ApiServer.ProxyCreate: enabled unless told otherwise (`null` is not telling)."""
        given = gojson.fields(gojson.read(body), PROXY, "Proxy.", PROXY_TYPE)
        for required in ("name", "upstream"):
            if not given.get(required):
                raise MISSING_FIELD.joined(required)
        if given["name"] in self.proxies:
            raise PROXY_EXISTS
        proxy = Proxy(given["name"], given.get("listen", ""), given["upstream"])
        if given.get("enabled", True):
            await proxy.start()
        self.proxies[proxy.name] = proxy
        return proxy

    async def update(self, name: str, body: bytes) -> Proxy:
        """ApiServer.ProxyUpdate: what the body leaves out (or sets to null) stays as it is."""
        proxy = self.get(name)
        given = gojson.fields(gojson.read(body), PROXY, "Proxy.", PROXY_TYPE)
        await proxy.update(
            given.get("listen", proxy.listen),
            given.get("upstream", proxy.upstream),
            given.get("enabled", proxy.enabled),
        )
        return proxy

    async def populate(self, body: bytes) -> Populated:
        """ProxyCollection.PopulateJson: every entry checked for a name and an upstream before
        any is applied; then each added or replaced in turn, stopping at the first failure.

        An entry whose addresses resolve to the proxy's own leaves the proxy as it is, and the
        answer lists the entry as given (enabled false, no toxics), as Toxiproxy's does.
        """
        try:
            wanted = populate_entries(body)
        except ApiError as exc:
            return Populated([], exc)
        done = Populated([])
        for given in wanted:
            proxy = Proxy(given["name"], given.get("listen", ""), given["upstream"])
            try:
                await self.add_or_replace(proxy, given.get("enabled", True))
            except ApiError as exc:
                done.error = exc
                break
            done.proxies.append(proxy)
        return done

    async def add_or_replace(self, proxy: Proxy, start: bool) -> None:
        """ProxyCollection.AddOrReplace: a proxy that differs is stopped and replaced."""
        existing = self.proxies.get(proxy.name)
        if existing is not None:
            if not await existing.differs(proxy.listen, proxy.upstream):
                return
            existing.stop()
        if start:
            await proxy.start()
        self.proxies[proxy.name] = proxy

    def remove(self, name: str) -> None:
        self.get(name).stop()
        del self.proxies[name]

    async def reset(self) -> None:
        """ApiServer.ResetState: each proxy started and its toxics removed, in turn."""
        for proxy in self.proxies.values():
            await proxy.start()
            proxy.reset_toxics()
