"""The CSV import service's HTTP API: submit a file, follow an import, list them."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx

from harness.core.errors import HarnessError
from harness.core.polling import SYSTEM_CLOCK, Clock, poll

FINISHED = ("done", "failed")
UPLOAD_CHUNK = 256 * 1024


class CsvImportClient:
    """A small client; the transport is a seam so tests can answer for the service."""

    def __init__(
        self, url: str, timeout: float = 60, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> CsvImportClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            return self._http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            raise HarnessError(
                f"the CSV import service does not answer at {self.url}: {exc}",
                "is the lab up? `make status`; `make dev-up` starts it",
            ) from exc

    @staticmethod
    def _refused(response: httpx.Response) -> HarnessError:
        try:
            body = response.json()
            message, hint = str(body["message"]), str(body.get("hint", ""))
        except (ValueError, KeyError, TypeError):
            message, hint = response.text.strip() or response.reason_phrase, ""
        return HarnessError(f"the import service refused: {message}", hint)

    def submit(
        self, path: Path, agency_id: int, on_bytes: Callable[[int], None] = lambda _: None
    ) -> dict[str, Any]:
        """Upload a file; the import's summary (`created` false: this file was imported before)."""

        def chunks() -> Iterator[bytes]:
            with path.open("rb") as file:
                while data := file.read(UPLOAD_CHUNK):
                    on_bytes(len(data))
                    yield data

        response = self._send(
            "POST",
            "/imports",
            params={"agency_id": agency_id},
            content=chunks(),
            headers={"Content-Type": "text/csv", "Content-Length": str(path.stat().st_size)},
        )
        if response.status_code >= 400:
            raise self._refused(response)
        body: dict[str, Any] = response.json()
        return body

    def get(self, import_id: int) -> dict[str, Any] | None:
        """The import's summary; None while the service cannot reach the database."""
        response = self._send("GET", f"/imports/{import_id}")
        if response.status_code == 503:
            return None
        if response.status_code >= 400:
            raise self._refused(response)
        body: dict[str, Any] = response.json()
        return body

    def imports(self) -> list[dict[str, Any]]:
        response = self._send("GET", "/imports")
        if response.status_code >= 400:
            raise self._refused(response)
        listed: list[dict[str, Any]] = response.json()["imports"]
        return listed

    def wait(
        self,
        import_id: int,
        timeout: float,
        on_summary: Callable[[dict[str, Any]], None] = lambda _: None,
        clock: Clock = SYSTEM_CLOCK,
    ) -> dict[str, Any]:
        """Follow the import until it is done or failed; a failover in between is waited out."""

        def step() -> dict[str, Any] | None:
            summary = self.get(import_id)
            if summary is not None:
                on_summary(summary)
            return summary

        polled = poll(
            step, lambda s: s is not None and s["state"] in FINISHED, timeout=timeout, clock=clock
        )
        if not polled.held or polled.value is None:
            state = polled.value["state"] if polled.value else "unknown"
            raise HarnessError(
                f"import {import_id} is still {state} after {timeout:.0f} s",
                f"it goes on in the service: `curl {self.url}/imports/{import_id}`",
            )
        return polled.value
