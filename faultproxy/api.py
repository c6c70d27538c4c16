"""Toxiproxy's HTTP API over asyncio: one request per connection, JSON in and out."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Awaitable, Callable
from typing import Any

from faultproxy import VERSION
from faultproxy.errors import BAD_REQUEST_BODY, METHOD_NOT_ALLOWED, NOT_FOUND, ApiError
from faultproxy.proxy import ProxyCollection

Response = tuple[int, Any]  # status, JSON body (None for 204)
Handler = Callable[..., Awaitable[Response]]
REASONS = {
    200: "OK",
    201: "Created",
    204: "No Content",
    400: "Bad Request",
    404: "Not Found",
    405: "Method Not Allowed",
    409: "Conflict",
    500: "Internal Server Error",
}
MAX_BODY = 1 << 20


class Api:
    def __init__(self, collection: ProxyCollection) -> None:
        self.proxies = collection
        self.routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(r"/reset"), {"POST": self.reset}),
            (re.compile(r"/version"), {"GET": self.version}),
            (re.compile(r"/populate"), {"POST": self.populate}),
            (re.compile(r"/proxies"), {"GET": self.index, "POST": self.create}),
            (
                re.compile(r"/proxies/(?P<proxy>[^/]+)"),
                {
                    "GET": self.show,
                    "POST": self.update,
                    "PATCH": self.update,
                    "DELETE": self.delete,
                },
            ),
            (
                re.compile(r"/proxies/(?P<proxy>[^/]+)/toxics"),
                {"GET": self.toxic_index, "POST": self.toxic_create},
            ),
            (
                re.compile(r"/proxies/(?P<proxy>[^/]+)/toxics/(?P<toxic>[^/]+)"),
                {
                    "GET": self.toxic_show,
                    "POST": self.toxic_update,
                    "PATCH": self.toxic_update,
                    "DELETE": self.toxic_delete,
                },
            ),
        ]

    async def dispatch(self, method: str, path: str, body: bytes) -> Response:
        path = path.split("?", 1)[0].rstrip("/") or "/"
        for pattern, handlers in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = handlers.get(method)
            if handler is None:
                raise METHOD_NOT_ALLOWED
            return await handler(body=body, **match.groupdict())
        raise NOT_FOUND

    @staticmethod
    def parse(body: bytes) -> Any:
        try:
            return json.loads(body or b"null")
        except ValueError as exc:
            raise BAD_REQUEST_BODY.joined(str(exc)) from None

    async def reset(self, body: bytes) -> Response:
        await self.proxies.reset()
        return 204, None

    async def version(self, body: bytes) -> Response:
        return 200, {"version": VERSION}

    async def populate(self, body: bytes) -> Response:
        items = self.parse(body)
        if isinstance(items, dict):
            items = items.get("proxies", [])
        if not isinstance(items, list):
            raise BAD_REQUEST_BODY.joined("expected a list of proxies")
        proxies = await self.proxies.populate(items)
        return 201, {"proxies": [p.to_json() for p in proxies]}

    async def index(self, body: bytes) -> Response:
        return 200, {name: p.to_json() for name, p in self.proxies.proxies.items()}

    async def create(self, body: bytes) -> Response:
        return 201, (await self.proxies.create(self.parse(body))).to_json()

    async def show(self, body: bytes, proxy: str) -> Response:
        return 200, self.proxies.get(proxy).to_json()

    async def update(self, body: bytes, proxy: str) -> Response:
        return 200, (await self.proxies.update(proxy, self.parse(body))).to_json()

    async def delete(self, body: bytes, proxy: str) -> Response:
        self.proxies.remove(proxy)
        return 204, None

    async def toxic_index(self, body: bytes, proxy: str) -> Response:
        return 200, [t.to_json() for t in self.proxies.get(proxy).toxics.values()]

    async def toxic_create(self, body: bytes, proxy: str) -> Response:
        return 200, self.proxies.get(proxy).add_toxic(self.parse(body)).to_json()

    async def toxic_show(self, body: bytes, proxy: str, toxic: str) -> Response:
        return 200, self.proxies.get(proxy).toxic(toxic).to_json()

    async def toxic_update(self, body: bytes, proxy: str, toxic: str) -> Response:
        return 200, self.proxies.get(proxy).update_toxic(toxic, self.parse(body)).to_json()

    async def toxic_delete(self, body: bytes, proxy: str, toxic: str) -> Response:
        self.proxies.get(proxy).remove_toxic(toxic)
        return 204, None

    # -- HTTP ---------------------------------------------------------------------------------

    async def serve_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), 15)
            lines = head.decode("latin-1").split("\r\n")
            method, target, _version = lines[0].split(" ", 2)
            headers = {
                k.strip().lower(): v.strip()
                for k, _, v in (line.partition(":") for line in lines[1:] if line)
            }
            length = int(headers.get("content-length", "0"))
            if length > MAX_BODY:
                raise BAD_REQUEST_BODY.joined("body too large")
            body = await reader.readexactly(length) if length else b""
            try:
                status, payload = await self.dispatch(method.upper(), target, body)
            except ApiError as exc:
                status, payload = exc.status, exc.body()
            data = b"" if payload is None else json.dumps(payload).encode() + b"\n"
            writer.write(
                f"HTTP/1.1 {status} {REASONS.get(status, 'Unknown')}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n"
                "Connection: close\r\n\r\n".encode()
                + data
            )
            await writer.drain()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, TimeoutError, ValueError):
            pass
        except ConnectionError:
            pass
        finally:
            writer.close()
