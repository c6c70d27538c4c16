"""The HTTP API: POST /imports?agency_id=N answers 202 with the import's id as soon as the file
is stored and registered; GET /imports/{id} and GET /imports report; GET /health answers
while the process runs (its body says whether the database does)."""

from __future__ import annotations

import json
import re
import time
from datetime import datetime
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from csvimport.errors import Refused
from csvimport.receive import body_chunks, receive
from csvimport.store import TRANSIENT, Store
from csvimport.worker import Worker, log

CSV_TYPES = frozenset(
    {
        "text/csv",
        "text/plain",
        "application/csv",
        "application/octet-stream",
        "application/vnd.ms-excel",
    }
)
REGISTER_DEADLINE = 30.0  # s: a request arriving during a failover waits it out
DRAIN_LIMIT = 8 * 1024 * 1024  # bytes of a refused body read (and dropped) to answer cleanly
REJECTS_SHOWN = 1000
IMPORT_PATH = re.compile(r"/imports/(\d+)")


def unavailable(exc: BaseException) -> Refused:
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    return Refused(
        503,
        "database_unavailable",
        f"the database is unavailable: {first}",
        "retry in a few seconds (a failover takes about 20 s); the same file is the same import",
    )


def encode(value: Any) -> Any:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(type(value).__name__)


class ImportServer(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(
        self, address: tuple[str, int], store: Store, worker: Worker, spool: Path, limit: int
    ) -> None:
        super().__init__(address, Handler)
        self.store = store
        self.worker = worker
        self.spool = spool
        self.limit = limit


class Handler(BaseHTTPRequestHandler):
    server: ImportServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        log(f"{self.address_string()} {format % args}")

    def answer(self, status: int, body: Any) -> None:
        data = json.dumps(body, default=encode).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if self.close_connection:
            self.send_header("Connection", "close")
        self.end_headers()
        self.wfile.write(data)

    def refuse(self, refused: Refused) -> None:
        self.answer(refused.status, refused.body())

    def do_GET(self) -> None:
        url = urlsplit(self.path)
        try:
            if url.path == "/health":
                try:
                    database = self.server.store.ping()
                except TRANSIENT as exc:
                    database = f"unavailable: {str(exc).strip().splitlines()[0]}"
                self.answer(200, {"status": "ok", "database": database})
            elif url.path == "/imports":
                self.answer(200, {"imports": self.server.store.imports(100)})
            elif found := IMPORT_PATH.fullmatch(url.path):
                summary = self.server.store.summary(int(found[1]), REJECTS_SHOWN)
                if summary is None:
                    raise Refused(404, "not_found", f"no import {found[1]}")
                self.answer(200, summary)
            else:
                raise Refused(404, "not_found", f"no such resource: {url.path}")
        except Refused as refused:
            self.refuse(refused)
        except TRANSIENT as exc:
            self.refuse(unavailable(exc))

    def do_POST(self) -> None:
        url = urlsplit(self.path)
        try:
            if url.path != "/imports":
                raise Refused(404, "not_found", f"no such resource: {url.path}")
            self.answer(*self.submit(parse_qs(url.query)))
        except Refused as refused:
            self.drain()
            self.refuse(refused)
        except TRANSIENT as exc:
            self.drain()
            self.refuse(unavailable(exc))

    def body_size(self) -> tuple[int | None, bool]:
        chunked = "chunked" in self.headers.get("Transfer-Encoding", "").lower()
        raw = self.headers.get("Content-Length")
        if not chunked and (raw is None or not raw.isdigit()):
            raise Refused(411, "length_required", "send the body with a Content-Length")
        return (None if chunked else int(raw or 0)), chunked

    def drain(self) -> None:
        """Read a refused body when it is small, so the client reads the answer, not a reset."""
        if self.close_connection:
            return
        try:
            length, chunked = self.body_size()
        except Refused:
            self.close_connection = True
            return
        if chunked or length is None or length > DRAIN_LIMIT:
            self.close_connection = True
            return
        self.rfile.read(length)

    def submit(self, query: dict[str, list[str]]) -> tuple[int, dict[str, Any]]:
        raw = query.get("agency_id", [""])[0]
        if not raw.isdigit():
            raise Refused(400, "agency_id", "agency_id must be given as a number: ?agency_id=N")
        agency_id = int(raw)
        content_type = self.headers.get("Content-Type", "text/csv").split(";")[0].strip().lower()
        if content_type not in CSV_TYPES:
            raise Refused(
                415,
                "not_csv",
                f"not a CSV file: Content-Type is {content_type}",
                "send the file as text/csv",
            )
        length, chunked = self.body_size()
        if length == 0:
            raise Refused(400, "empty", "the file is empty", "send a header row and rows")
        if not self.server.store.agency_exists(agency_id):
            raise Refused(404, "unknown_agency", f"agency {agency_id} does not exist")
        chunks = body_chunks(self.rfile, length, chunked, self.server.limit)
        try:
            received = receive(chunks, self.server.spool, agency_id)
        except Refused:
            self.close_connection = True  # the rest of the body was not read
            raise
        import_id, created = self.register(
            agency_id, received.sha256, received.size, received.lines
        )
        self.server.worker.wake.set()
        summary = self.server.store.summary(import_id, 0) or {"id": import_id}
        summary.pop("rejected_rows", None)
        summary["created"] = created
        return (HTTPStatus.ACCEPTED if created else HTTPStatus.OK), summary

    def register(self, agency_id: int, sha256: str, size: int, lines: int) -> tuple[int, bool]:
        """Registered within the deadline, or refused: a failover is waited out."""
        deadline = time.monotonic() + REGISTER_DEADLINE
        while True:
            try:
                return self.server.store.register(agency_id, sha256, size, lines)
            except TRANSIENT as exc:
                if time.monotonic() > deadline:
                    raise unavailable(exc) from None
                time.sleep(1)
