"""Patroni's REST API: the cluster as Patroni sees it, and its dynamic configuration."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import httpx

from harness.core.errors import PatroniUnavailable

LEADER_ROLES = ("leader", "standby_leader")


@dataclass(frozen=True)
class Member:
    name: str
    role: str  # leader, sync_standby, replica, ...
    state: str  # running, streaming, starting, stopped, ...
    host: str
    timeline: int | None
    lag: int | None  # bytes behind the leader; None for the leader or when unknown
    pending_restart: bool = False  # a changed setting waits for PostgreSQL's restart

    @property
    def is_leader(self) -> bool:
        return self.role in LEADER_ROLES

    @property
    def is_sync_standby(self) -> bool:
        return self.role == "sync_standby"


@dataclass(frozen=True)
class Cluster:
    scope: str
    members: tuple[Member, ...]
    scheduled_switchover: str = ""  # when one is scheduled: its time, as Patroni reports it

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> Cluster:
        members = tuple(
            Member(
                name=str(m["name"]),
                role=str(m.get("role", "unknown")),
                state=str(m.get("state", "unknown")),
                host=str(m.get("host", "")),
                timeline=m.get("timeline"),
                lag=m["lag"] if isinstance(m.get("lag"), int) else None,
                pending_restart=bool(m.get("pending_restart", False)),
            )
            for m in data.get("members", [])
        )
        scheduled = data.get("scheduled_switchover") or {}
        return cls(
            scope=str(data.get("scope", "")),
            members=members,
            scheduled_switchover=str(scheduled.get("at", "")) if scheduled else "",
        )

    @property
    def leaders(self) -> list[Member]:
        return [m for m in self.members if m.is_leader and m.state == "running"]

    @property
    def leader(self) -> Member | None:
        leaders = self.leaders
        return leaders[0] if len(leaders) == 1 else None

    @property
    def streaming_replicas(self) -> list[Member]:
        return [m for m in self.members if not m.is_leader and m.state == "streaming"]

    @property
    def sync_standbys(self) -> list[Member]:
        return [m for m in self.members if m.is_sync_standby]

    def member(self, name: str) -> Member | None:
        return next((m for m in self.members if m.name == name), None)

    def describe(self) -> str:
        """One line, for progress and timeout messages."""
        if not self.members:
            return "no members registered"
        return ", ".join(f"{m.name}={m.role}/{m.state}" for m in self.members)


def verifying(ca_file: str | None) -> ssl.SSLContext | bool:
    """How an HTTPS client checks a server: against `ca_file` (the lab's or the inventory's
    CA) and the name it was reached by, or the system's CAs without one."""
    return ssl.create_default_context(cafile=ca_file) if ca_file else True


class PatroniClient:
    """Asks each node's REST endpoint in turn: any live member knows the whole cluster."""

    def __init__(
        self,
        urls: Sequence[str],
        auth: tuple[str, str] | None = None,
        timeout: float = 2.0,
        transport: httpx.BaseTransport | None = None,
        ca_file: str | None = None,
    ) -> None:
        self._urls = list(urls)
        # a transport given (a test's) carries its own TLS, if any
        verify = verifying(ca_file) if transport is None else True
        self._http = httpx.Client(auth=auth, timeout=timeout, transport=transport, verify=verify)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> PatroniClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _request(
        self, method: str, path: str, json: Any = None, timeout: float | None = None
    ) -> Any:
        """The first node that answers serves; a changing request is never sent twice once a
        node has answered it, whatever the answer."""
        errors: list[str] = []
        for url in self._urls:
            try:
                response = self._http.request(
                    method, url + path, json=json, timeout=timeout or self._http.timeout
                )
            except httpx.ConnectError as exc:
                errors.append(f"{url}: {type(exc).__name__}")
                continue
            except httpx.HTTPError as exc:
                if method != "GET":
                    raise PatroniUnavailable(f"{method} {path} on {url} failed: {exc!r}") from exc
                errors.append(f"{url}: {type(exc).__name__}")
                continue
            if method == "GET" and (response.status_code >= 500 or response.status_code == 404):
                errors.append(f"{url}: HTTP {response.status_code}")
                continue
            if response.status_code >= 400:
                raise PatroniUnavailable(
                    f"{method} {path} refused by {url}: HTTP {response.status_code} "
                    f"{response.text.strip()[:300]}"
                )
            is_json = response.headers.get("content-type", "").startswith("application/json")
            return response.json() if is_json else response.text
        raise PatroniUnavailable(
            f"no Patroni REST endpoint answered {method} {path} ({'; '.join(errors)})",
            "is the stack up? `make status` shows it, `make dev-up` starts it",
        )

    def cluster(self) -> Cluster:
        return Cluster.from_json(self._request("GET", "/cluster"))

    def restart(self, member_url: str) -> None:
        """Restart one member's PostgreSQL if a setting waits for it; Patroni answers when done."""
        response = self._http.post(
            f"{member_url}/restart", json={"restart_pending": True}, timeout=120
        )
        if response.status_code >= 400:
            raise PatroniUnavailable(
                f"restart on {member_url} refused: HTTP {response.status_code} "
                f"{response.text.strip()[:300]}"
            )

    def reinitialize(self, member_url: str) -> None:
        """Rebuild a replica from the leader; Patroni answers once the rebuild has started."""
        response = self._http.post(f"{member_url}/reinitialize", json={"force": True}, timeout=30)
        if response.status_code >= 400:
            raise PatroniUnavailable(
                f"reinitialize on {member_url} refused: HTTP {response.status_code} "
                f"{response.text.strip()[:300]}"
            )

    def member_status(self, member_url: str) -> dict[str, Any]:
        """One member's own view (GET /patroni): state, role, postmaster_start_time..."""
        response = self._http.get(f"{member_url}/patroni")
        response.raise_for_status()
        result: dict[str, Any] = response.json()
        return result

    def config(self) -> dict[str, Any]:
        result: dict[str, Any] = self._request("GET", "/config")
        return result

    def switchover(self, leader: str, candidate: str) -> None:
        """Planned switchover; Patroni answers once the candidate has taken over."""
        self._request(
            "POST", "/switchover", json={"leader": leader, "candidate": candidate}, timeout=60
        )

    def failover(self, candidate: str) -> None:
        """Manual failover to a candidate (the sync standby in synchronous mode); Patroni
        answers once it has taken over."""
        self._request("POST", "/failover", json={"candidate": candidate}, timeout=60)

    def patch_config(self, changes: dict[str, Any]) -> dict[str, Any]:
        result: dict[str, Any] = self._request("PATCH", "/config", json=changes)
        return result
