"""POST / takes Alertmanager's webhook; GET /notifications?since=<unix seconds> returns the log."""

from __future__ import annotations

import json
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlsplit

from alertlog.log import Log

MAX_BODY = 4 * 1024 * 1024


def make_server(host: str, port: int, log: Log) -> ThreadingHTTPServer:
    class Handler(BaseHTTPRequestHandler):
        def _reply(self, status: int, body: Any) -> None:
            data = json.dumps(body).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            if not 0 < length <= MAX_BODY:
                self._reply(400, {"error": f"a body of 1 to {MAX_BODY} bytes is needed"})
                return
            try:
                count = log.record(json.loads(self.rfile.read(length)))
            except ValueError as exc:  # JSONDecodeError is one
                self._reply(400, {"error": str(exc)})
                return
            self._reply(200, {"recorded": count})

        def do_GET(self) -> None:
            url = urlsplit(self.path)
            if url.path == "/-/ready":
                self._reply(200, {"ready": True})
                return
            if url.path != "/notifications":
                self._reply(404, {"error": "GET /notifications?since=<unix seconds>"})
                return
            raw = parse_qs(url.query).get("since", ["0"])[0]
            try:
                since = float(raw)
            except ValueError:
                self._reply(400, {"error": f"since={raw!r} is not a number of seconds"})
                return
            self._reply(200, log.since(since))

        def log_message(self, format: str, *args: Any) -> None:
            pass  # one line per scrape-like request would drown the container's log

    return ThreadingHTTPServer((host, port), Handler)
