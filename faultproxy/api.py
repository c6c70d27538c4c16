"""Toxiproxy 2.12's HTTP API (api.go) over asyncio: its routes, middlewares and responses.

A path matches as gorilla/mux matches it (percent-decoded, a trailing slash not ignored); an
unmatched one gets net/http's plain 404, a matched path with another method an empty 405. A
matched route gets a fresh request id (hlog.RequestIDHandler: X-Toxiproxy-Request-Id) and
refuses browsers (stopBrowsersMiddleware: a User-Agent starting "Mozilla/" gets a 403, so a web
page cannot drive the API). Errors go out as apiError sends them through http.Error: the JSON
`{"error", "status"}` and a newline, as text/plain. Connections are kept alive between
requests, as by Go's server.
"""

from __future__ import annotations

import asyncio
import base64
import email.utils
import hashlib
import itertools
import os
import random
import re
import socket
import struct
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any
from urllib.parse import unquote

from faultproxy import VERSION, gojson
from faultproxy.errors import ApiError
from faultproxy.proxy import ProxyCollection

JSON = "application/json"
TEXT = "text/plain; charset=utf-8"
MAX_BODY = 1 << 20
READ_TIMEOUT = 15.0  # ApiServer.Listen: ReadTimeout
IDLE_TIMEOUT = 60.0  # ... and IdleTimeout, between requests on a kept-alive connection


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str | None = None
    nosniff: bool = False  # http.Error's X-Content-Type-Options


def json_reply(status: int, payload: Any) -> Reply:
    return Reply(status, gojson.marshal(payload), JSON)


def plain_error(status: int, text: str) -> Reply:
    """http.Error: the text and a newline, as text/plain."""
    return Reply(status, text.encode() + b"\n", TEXT, nosniff=True)


def api_error(error: ApiError) -> Reply:
    return plain_error(error.status, gojson.marshal(error.body()).decode())


NOT_FOUND = plain_error(404, "404 page not found")
METHOD_NOT_ALLOWED = Reply(405)
BROWSER_REFUSED = plain_error(403, "User agent not allowed")

Handler = Callable[..., Awaitable[Reply]]


class RequestIds:
    """xid values, as hlog.RequestIDHandler makes them: seconds, machine, process and a counter,
    12 bytes in 20 characters of lower-case base32hex."""

    def __init__(self) -> None:
        machine = hashlib.md5(socket.gethostname().encode(), usedforsecurity=False).digest()
        self._prefix = machine[:3] + struct.pack(">H", os.getpid() & 0xFFFF)
        self._counter = itertools.count(random.getrandbits(24))

    def next(self) -> str:
        counter = (next(self._counter) & 0xFFFFFF).to_bytes(3, "big")
        raw = struct.pack(">I", int(time.time()) & 0xFFFFFFFF) + self._prefix + counter
        return base64.b32hexencode(raw).decode().lower().rstrip("=")


class BadRequest(Exception):
    """A request net/http cannot parse: it answers a plain 400 and closes."""


@dataclass
class Request:
    method: str
    target: str
    version: str
    headers: dict[str, str]
    body: bytes = b""

    @property
    def keep_alive(self) -> bool:
        tokens = {t.strip().lower() for t in self.headers.get("connection", "").split(",")}
        return "keep-alive" in tokens if self.version == "HTTP/1.0" else "close" not in tokens


class Api:
    def __init__(self, collection: ProxyCollection) -> None:
        self.proxies = collection
        self.ids = RequestIds()
        self.connections: set[asyncio.Task[None]] = set()
        proxy, toxic = r"/proxies/(?P<proxy>[^/]+)", r"/toxics/(?P<toxic>[^/]+)"
        self.routes: list[tuple[re.Pattern[str], dict[str, Handler]]] = [
            (re.compile(r"/reset"), {"POST": self.reset}),
            (re.compile(r"/proxies"), {"GET": self.index, "POST": self.create}),
            (re.compile(r"/populate"), {"POST": self.populate}),
            (
                re.compile(proxy),
                {
                    "GET": self.show,
                    "POST": self.update,
                    "PATCH": self.update,
                    "DELETE": self.delete,
                },
            ),
            (re.compile(proxy + r"/toxics"), {"GET": self.toxic_index, "POST": self.toxic_create}),
            (
                re.compile(proxy + toxic),
                {
                    "GET": self.toxic_show,
                    "POST": self.toxic_update,
                    "PATCH": self.toxic_update,
                    "DELETE": self.toxic_delete,
                },
            ),
            (re.compile(r"/version"), {"GET": self.version}),
        ]

    async def answer(self, request: Request) -> tuple[Reply, str | None]:
        """The reply to a request, and the request id a matched route gives it."""
        path = unquote(request.target.split("?", 1)[0])
        for pattern, handlers in self.routes:
            match = pattern.fullmatch(path)
            if match is None:
                continue
            handler = handlers.get(request.method)
            if handler is None:
                return METHOD_NOT_ALLOWED, None
            request_id = self.ids.next()
            if request.headers.get("user-agent", "").startswith("Mozilla/"):
                return BROWSER_REFUSED, request_id
            try:
                return await handler(request.body, **match.groupdict()), request_id
            except ApiError as exc:
                return api_error(exc), request_id
        return NOT_FOUND, None

    # -- the handlers (ApiServer.*) -------------------------------------------------------

    async def reset(self, body: bytes) -> Reply:
        await self.proxies.reset()
        return Reply(204)

    async def version(self, body: bytes) -> Reply:
        return Reply(
            200, f'{{"version": "{VERSION}"}}\n'.encode(), "application/json;charset=utf-8"
        )

    async def populate(self, body: bytes) -> Reply:
        """Always JSON, errors included: `{"error", "status", "proxies"}`; no proxies is null."""
        done = await self.proxies.populate(body)
        payload = {} if done.error is None else done.error.body()
        payload["proxies"] = [p.to_json() for p in done.proxies] or None
        return json_reply(201 if done.error is None else done.error.status, payload)

    async def index(self, body: bytes) -> Reply:
        proxies = self.proxies.proxies
        return json_reply(200, {name: proxies[name].to_json() for name in sorted(proxies)})

    async def create(self, body: bytes) -> Reply:
        return json_reply(201, (await self.proxies.create(body)).to_json())

    async def show(self, body: bytes, proxy: str) -> Reply:
        return json_reply(200, self.proxies.get(proxy).to_json())

    async def update(self, body: bytes, proxy: str) -> Reply:
        return json_reply(200, (await self.proxies.update(proxy, body)).to_json())

    async def delete(self, body: bytes, proxy: str) -> Reply:
        self.proxies.remove(proxy)
        return Reply(204)

    async def toxic_index(self, body: bytes, proxy: str) -> Reply:
        return json_reply(200, self.proxies.get(proxy).toxics_json())

    async def toxic_create(self, body: bytes, proxy: str) -> Reply:
        return json_reply(200, self.proxies.get(proxy).add_toxic(body).to_json())

    async def toxic_show(self, body: bytes, proxy: str, toxic: str) -> Reply:
        return json_reply(200, self.proxies.get(proxy).toxic(toxic).to_json())

    async def toxic_update(self, body: bytes, proxy: str, toxic: str) -> Reply:
        return json_reply(200, self.proxies.get(proxy).update_toxic(toxic, body).to_json())

    async def toxic_delete(self, body: bytes, proxy: str, toxic: str) -> Reply:
        self.proxies.get(proxy).remove_toxic(toxic)
        return Reply(204)

    # -- HTTP/1.1 ---------------------------------------------------------------------------

    def serve_connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """asyncio.start_server's callback: each connection served in a task of its own."""
        task = asyncio.create_task(self.serve(reader, writer))
        self.connections.add(task)
        task.add_done_callback(self.connections.discard)

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            first = True
            while request := await read_request(reader, writer, first):
                first = False
                reply, request_id = await self.answer(request)
                writer.write(render(request, reply, request_id))
                await writer.drain()
                if not request.keep_alive:
                    break
        except (BadRequest, asyncio.LimitOverrunError):
            writer.write(
                b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain; charset=utf-8\r\n"
                b"Connection: close\r\n\r\n400 Bad Request"
            )
        except (asyncio.IncompleteReadError, TimeoutError, ConnectionError):
            pass
        finally:
            writer.close()


async def read_request(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, first: bool
) -> Request | None:
    """The next request on a connection, or None once the client is done with it."""
    try:
        head = await asyncio.wait_for(
            reader.readuntil(b"\r\n\r\n"), READ_TIMEOUT if first else IDLE_TIMEOUT
        )
    except asyncio.IncompleteReadError as exc:
        if exc.partial.strip():
            raise BadRequest from None
        return None
    lines = head.decode("latin-1").split("\r\n")
    try:
        method, target, version = lines[0].split(" ")
    except ValueError:
        raise BadRequest from None
    if version not in ("HTTP/1.0", "HTTP/1.1"):
        raise BadRequest
    headers = {}
    for line in filter(None, lines[1:]):
        name, colon, value = line.partition(":")
        if not colon or not name or name != name.strip():
            raise BadRequest
        headers[name.lower()] = value.strip()
    request = Request(method, target, version, headers)
    if "100-continue" in headers.get("expect", "").lower() and version == "HTTP/1.1":
        writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
    request.body = await asyncio.wait_for(read_body(reader, headers), READ_TIMEOUT)
    return request


async def read_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> bytes:
    """The body, by Content-Length or in chunks (Transfer-Encoding: chunked)."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        body = b""
        while size := await chunk_size(reader):
            body += await reader.readexactly(size)
            await reader.readexactly(2)
            if len(body) > MAX_BODY:
                raise BadRequest
        while await reader.readuntil(b"\r\n") != b"\r\n":  # trailers
            pass
        return body
    length = headers.get("content-length", "0")
    if not length.isdigit() or int(length) > MAX_BODY:
        raise BadRequest
    return await reader.readexactly(int(length))


async def chunk_size(reader: asyncio.StreamReader) -> int:
    line = (await reader.readuntil(b"\r\n")).split(b";", 1)[0].strip()
    try:
        return int(line, 16)
    except ValueError:
        raise BadRequest from None


def render(request: Request, reply: Reply, request_id: str | None) -> bytes:
    """A response as net/http writes it: status line in the request's version, then headers."""
    headers = []
    if reply.content_type is not None:
        headers.append(f"Content-Type: {reply.content_type}")
    if reply.nosniff:
        headers.append("X-Content-Type-Options: nosniff")
    if request_id is not None:
        headers.append(f"X-Toxiproxy-Request-Id: {request_id}")
    headers.append(f"Date: {email.utils.formatdate(usegmt=True)}")
    if reply.status != 204:
        headers.append(f"Content-Length: {len(reply.body)}")
    if not request.keep_alive:
        headers.append("Connection: close")
    elif request.version == "HTTP/1.0":
        headers.append("Connection: keep-alive")
    status = f"{request.version} {reply.status} {HTTPStatus(reply.status).phrase}"
    return "\r\n".join([status, *headers, "", ""]).encode("latin-1") + reply.body
