"""Prometheus's and Alertmanager's HTTP APIs: scrape targets, queries, and the alerts that fire."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import httpx

from harness.core.errors import HarnessError


@dataclass(frozen=True)
class Target:
    job: str
    instance: str
    health: str  # up, down, unknown (not scraped yet)
    error: str

    @property
    def up(self) -> bool:
        return self.health == "up"


@dataclass(frozen=True)
class FiringAlert:
    name: str
    labels: dict[str, str]
    starts_at: str  # RFC 3339, as Alertmanager says
    summary: str

    @property
    def where(self) -> str:
        """The labels that tell two firings of one alert apart."""
        skip = {"alertname", "severity"}
        return ", ".join(f"{k}={v}" for k, v in sorted(self.labels.items()) if k not in skip)


class _Api:
    def __init__(
        self, what: str, url: str, timeout: float, transport: httpx.BaseTransport | None
    ) -> None:
        self.what = what
        self.url = url
        self._http = httpx.Client(base_url=url, timeout=timeout, transport=transport)

    def close(self) -> None:
        self._http.close()

    def get(self, path: str, params: dict[str, str] | None = None) -> Any:
        try:
            response = self._http.get(path, params=params)
            if response.status_code in (400, 422):  # Prometheus: a query it cannot run
                raise HarnessError(
                    f"{self.what} refused {params}: {_error_of(response)}",
                    "check the expression against the metric names the targets export",
                )
            response.raise_for_status()
        except httpx.HTTPError as exc:
            raise HarnessError(
                f"{self.what} does not answer at {self.url}: {exc}",
                "is the lab up? `make dev-up` starts monitoring with it",
            ) from exc
        return response.json()


def _error_of(response: httpx.Response) -> str:
    try:
        return str(response.json().get("error", response.text))
    except ValueError:
        return response.text


class PrometheusClient(_Api):
    def __init__(
        self, url: str, timeout: float = 3, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__("Prometheus", url, timeout, transport)

    def targets(self) -> list[Target]:
        active = self.get("/api/v1/targets", {"state": "active"})["data"]["activeTargets"]
        return [
            Target(t["labels"]["job"], t["labels"]["instance"], t["health"], t["lastError"])
            for t in active
        ]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's vector: [{metric: {...}, value: [t, "v"]}, ...]."""
        result: list[dict[str, Any]] = self.get("/api/v1/query", {"query": expr})["data"]["result"]
        return result

    def query_range(
        self, expr: str, start: float, end: float, step: float
    ) -> list[tuple[dict[str, str], list[tuple[float, float]]]]:
        """A range query's matrix: (labels, [(unix seconds, value), ...]) per series."""
        params = {"query": expr, "start": f"{start:.3f}", "end": f"{end:.3f}", "step": f"{step:g}"}
        matrix = self.get("/api/v1/query_range", params)["data"]["result"]
        return [(dict(s["metric"]), [(float(t), float(v)) for t, v in s["values"]]) for s in matrix]


class AlertmanagerClient(_Api):
    def __init__(
        self, url: str, timeout: float = 3, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__("Alertmanager", url, timeout, transport)

    def firing(self) -> list[FiringAlert]:
        """Active alerts (API v2); resolved ones are gone from this list."""
        found = self.get("/api/v2/alerts", {"active": "true", "silenced": "false"})
        return sorted(
            (
                FiringAlert(
                    a["labels"]["alertname"],
                    a["labels"],
                    a["startsAt"],
                    a.get("annotations", {}).get("summary", ""),
                )
                for a in found
            ),
            key=lambda a: (a.name, a.where),
        )


@dataclass(frozen=True)
class Notification:
    """One alert in one webhook notification, as the alert log received it."""

    received: float  # unix seconds
    status: str  # firing or resolved
    name: str
    labels: dict[str, str]

    @property
    def where(self) -> str:
        return FiringAlert(self.name, self.labels, "", "").where


class AlertLogClient(_Api):
    """The lab's webhook receiver (alertlog/): what Alertmanager sent, resolutions too."""

    def __init__(
        self, url: str, timeout: float = 3, transport: httpx.BaseTransport | None = None
    ) -> None:
        super().__init__("The alert log", url, timeout, transport)

    def notifications(self, since: float = 0) -> list[Notification]:
        found = self.get("/notifications", {"since": f"{since:.3f}"})
        return [
            Notification(
                float(n["received"]), n["status"], n["labels"].get("alertname", ""), n["labels"]
            )
            for n in found
        ]
