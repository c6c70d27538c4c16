"""The fault proxy's HTTP API (Toxiproxy's): links, toxics, reset."""

from __future__ import annotations

from typing import Any

import httpx

from harness.core.errors import HarnessError


class FaultProxyClient:
    """A small client; the transport is a seam so tests can answer for the proxy."""

    def __init__(
        self, url: str, timeout: float = 5, transport: httpx.BaseTransport | None = None
    ) -> None:
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def request(self, method: str, path: str, body: Any = None, missing_ok: bool = False) -> Any:
        """The answer's JSON; None for a 404 when `missing_ok`. Any other refusal raises."""
        try:
            response = self._http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise HarnessError(
                f"the fault proxy does not answer at {self.url}: {exc}",
                "is the lab up? `make dev-up`",
            ) from exc
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise HarnessError(f"fault proxy refused {method} {path}: {response.text.strip()}")
        return response.json() if response.content else None

    def proxies(self) -> dict[str, Any]:
        """Every link with its toxics; raises when the proxy does not answer."""
        found: dict[str, Any] = self.request("GET", "/proxies")
        return found

    def faults(self) -> tuple[dict[str, list[str]], list[str]]:
        """Toxics per link, and the disabled links (none when the proxy is down)."""
        try:
            proxies = self.proxies()
        except HarnessError:
            return {}, []
        toxics = {n: [t["name"] for t in p["toxics"]] for n, p in proxies.items() if p["toxics"]}
        return toxics, [n for n, p in proxies.items() if not p["enabled"]]

    def reset(self) -> None:
        self.request("POST", "/reset")
