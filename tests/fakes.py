"""Fakes behind the harness's seams: a container runtime, a Compose project, the fault
proxy's and Patroni's HTTP APIs. Unit tests drive the real stack, fault and chaos code
against them; real-stack suites never use them."""

from __future__ import annotations

import json
import re
import socket
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx

from harness.clients.docker import Container, ContainerAction, Exposure, RunSpec, Volume
from harness.core.errors import CommandError, ContainerGone

Exec = Callable[[str, list[str]], str]  # (service, command) -> stdout; raise CommandError


def container(service: str, status: str = "running", address: str = "") -> Container:
    paused = status == "paused"
    return Container(
        name=f"gardenlab-{service}-1",
        id=f"id-{service}",
        service=service,
        status=status,
        running=status in ("running", "paused"),
        paused=paused,
        addresses=(address,) if address else (),
    )


@dataclass
class FakeRuntime:
    """Containers by service; actions change their state as Docker would, and are recorded."""

    services: dict[str, Container] = field(default_factory=dict)
    volume_list: list[Volume] = field(default_factory=list)
    network_list: list[str] = field(default_factory=list)
    actions: list[tuple[str, str]] = field(default_factory=list)  # (action, container name)
    executed: list[tuple[str, list[str]]] = field(default_factory=list)
    on_exec: Exec | None = None
    removed: dict[str, list[str]] = field(default_factory=dict)
    logs: dict[str, str] = field(default_factory=dict)  # container name -> its log

    @classmethod
    def with_services(cls, *names: str, **kwargs: Any) -> FakeRuntime:
        found = {n: container(n, address=f"172.18.0.{i}") for i, n in enumerate(names, start=2)}
        return cls(services=found, **kwargs)

    def _by_name(self, name: str) -> str:
        for service, c in self.services.items():
            if c.name == name:
                return service
        raise ContainerGone(["docker", "x", name], 1, f"No such container: {name}")

    def containers(self, *labels: str) -> list[Container]:
        return list(self.services.values())

    def networks(self, label: str) -> list[str]:
        return list(self.network_list)

    def volumes(self, label: str) -> list[Volume]:
        return list(self.volume_list)

    def act(self, action: ContainerAction, names: Sequence[str], timeout: int = 30) -> None:
        states = {
            "kill": "exited",
            "stop": "exited",
            "pause": "paused",
            "unpause": "running",
            "start": "running",
            "restart": "running",
        }
        for name in names:
            service = self._by_name(name)
            self.actions.append((action, service))
            old = self.services[service]
            status = states[action]
            self.services[service] = replace(
                old, status=status, running=status != "exited", paused=status == "paused"
            )

    def remove(
        self,
        *,
        containers: Sequence[str] = (),
        networks: Sequence[str] = (),
        volumes: Sequence[str] = (),
        images: Sequence[str] = (),
    ) -> None:
        for kind, names in (
            ("containers", containers),
            ("networks", networks),
            ("volumes", volumes),
            ("images", images),
        ):
            if names:
                self.removed.setdefault(kind, []).extend(names)
        for name in containers:
            del self.services[self._by_name(name)]

    def execute(self, container: str, command: Sequence[str], user: str = "root") -> str:
        service = self._by_name(container)
        self.executed.append((service, list(command)))
        return self.on_exec(service, list(command)) if self.on_exec else ""

    def image_exists(self, image: str) -> bool:
        return True

    def pull(self, image: str) -> None:
        pass

    def run_once(
        self,
        image: str,
        command: Sequence[str],
        entrypoint: str,
        mounts: Sequence[tuple[Path, str]] = (),
    ) -> str:
        return ""

    def build_image(self, context: Path, tag: str, build_args: Mapping[str, str]) -> None:
        pass

    def run_detached(self, spec: RunSpec) -> None:
        self.services[spec.name] = container(spec.name)

    def create_network(self, name: str, subnet: str, labels: Mapping[str, str]) -> None:
        self.network_list.append(name)

    def copy_to(self, source: Path, container: str, destination: str) -> None:
        pass

    def memory_used(self, names: Sequence[str]) -> dict[str, int]:
        return dict.fromkeys(names, 0)

    def exposure(self, container: str, log_lines: int = 2000) -> Exposure:
        raise NotImplementedError("the security suite asks the real engine")

    def logs_since(self, container: str, since: datetime) -> str:
        return self.logs.get(container, "")

    def exec_line(self, container: str, command: Sequence[str], env: Sequence[str]) -> list[str]:
        return ["exec", container, *command]


class FakeIptables:
    """iptables in each node, as far as the faults use it: chains, -A/-D/-C/-S/-F."""

    def __init__(self) -> None:
        self.chains: dict[str, dict[str, list[str]]] = {}  # service -> chain -> rules

    def __call__(self, service: str, command: list[str]) -> str:
        assert command[:2] == ["iptables", "-w"], command
        op, chain, *rule = command[2:]
        chains = self.chains.setdefault(service, {"INPUT": [], "OUTPUT": []})
        text = " ".join(rule)
        if op == "-N":
            if chain in chains:
                raise CommandError(command, 1, "Chain already exists.")
            chains[chain] = []
        elif op in ("-A", "-I"):
            chains[chain].append(text)
        elif op in ("-D", "-C"):
            if text not in chains.get(chain, []):
                raise CommandError(command, 1, "Bad rule (does a matching rule exist?)")
            if op == "-D":
                chains[chain].remove(text)
        elif op == "-S":
            if chain not in chains:
                raise CommandError(command, 1, "No chain/target/match by that name.")
            return "".join(f"-A {chain} {r}\n" for r in chains[chain])
        elif op == "-F":
            chains[chain] = []
        return ""

    def rules(self, service: str) -> dict[str, list[str]]:
        chains = self.chains.get(service, {})
        return {c: list(r) for c, r in chains.items() if c.startswith("GARDENLAB")}


class FakeProxyApi:
    """The fault proxy's API, in memory, behind httpx.MockTransport."""

    def __init__(self, links: Sequence[str]) -> None:
        self.proxies: dict[str, dict[str, Any]] = {
            n: {"name": n, "enabled": True, "toxics": []} for n in links
        }
        self.requests: list[tuple[str, str]] = []

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        self.requests.append((method, path))
        body = json.loads(request.content) if request.content else None
        if path == "/proxies" and method == "GET":
            return httpx.Response(200, json=self.proxies)
        if path == "/reset" and method == "POST":
            for p in self.proxies.values():
                p["enabled"], p["toxics"] = True, []
            return httpx.Response(204)
        match = re.fullmatch(r"/proxies/([^/]+)(/toxics(?:/([^/]+))?)?", path)
        if not match or match[1] not in self.proxies:
            return httpx.Response(404, json={"error": "proxy not found", "status": 404})
        proxy = self.proxies[match[1]]
        if match[2] is None and method == "PATCH":
            proxy.update(body or {})
            return httpx.Response(200, json=proxy)
        toxic = match[3]
        named = [t for t in proxy["toxics"] if t["name"] == toxic]
        if toxic and method == "GET":
            return httpx.Response(200, json=named[0]) if named else httpx.Response(404, json={})
        if toxic and method == "DELETE":
            proxy["toxics"] = [t for t in proxy["toxics"] if t["name"] != toxic]
            return httpx.Response(204) if named else httpx.Response(404, json={})
        if method == "POST":
            proxy["toxics"].append(body)
            return httpx.Response(200, json=body)
        return httpx.Response(405, json={})


def patroni_transport(cluster: Callable[[], dict[str, Any]]) -> httpx.MockTransport:
    """Patroni's REST API answering /cluster from a function, switchover with 200."""

    def handle(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/cluster":
            return httpx.Response(200, json=cluster())
        return httpx.Response(200, text="ok")

    return httpx.MockTransport(handle)


def cluster_json(leader: str = "pg1", sync: str = "pg2", replica: str = "pg3") -> dict[str, Any]:
    def member(name: str, role: str) -> dict[str, Any]:
        state = "running" if role == "leader" else "streaming"
        return {
            "name": name,
            "role": role,
            "state": state,
            "host": name,
            "timeline": 1,
            "lag": 0 if role != "leader" else None,
        }

    return {
        "scope": "gardenlab",
        "members": [
            member(leader, "leader"),
            member(sync, "sync_standby"),
            member(replica, "replica"),
        ],
    }


def merge(into: dict[str, Any], changes: dict[str, Any]) -> None:
    """Patroni's PATCH /config: nested keys merged, null removes a key."""
    for key, value in changes.items():
        if value is None:
            into.pop(key, None)
        elif isinstance(value, dict) and isinstance(into.get(key), dict):
            merge(into[key], value)
        else:
            into[key] = value


class FakePatroni:
    """Patroni's REST API over a cluster it changes as Patroni would: a switchover swaps the
    leader and the candidate, a restart clears a member's pending flag, a reinitialize gives
    it a new postmaster start time. Every request is recorded as (method, url path)."""

    def __init__(self, cluster: dict[str, Any], config: dict[str, Any] | None = None) -> None:
        self.cluster = cluster
        self.config: dict[str, Any] = config if config is not None else {"synchronous_mode": True}
        self.requests: list[tuple[str, str]] = []
        self.started: dict[str, int] = {}  # member -> postmaster start count
        self.refuse_switchover = ""  # when set: Patroni's 412 text
        self.patches: list[dict[str, Any]] = []  # PATCH /config bodies, in order

    def transport(self) -> httpx.MockTransport:
        return httpx.MockTransport(self.handle)

    def member(self, name: str) -> dict[str, Any]:
        return next(m for m in self.cluster["members"] if m["name"] == name)

    def by_port(self, request: httpx.Request) -> str:
        """The member a per-member URL points at: 8008 + index on 127.0.0.1."""
        return f"pg{(request.url.port or 8008) - 8007}"

    def handle(self, request: httpx.Request) -> httpx.Response:
        path, method = request.url.path, request.method
        self.requests.append((method, path))
        body = json.loads(request.content) if request.content else {}
        if path == "/cluster":
            return httpx.Response(200, json=self.cluster)
        if path == "/config" and method == "PATCH":
            merge(self.config, body)
            self.patches.append(body)
            if body.get("postgresql", {}).get("parameters"):  # as for a setting read at start
                for member in self.cluster["members"]:
                    member["pending_restart"] = True
            return httpx.Response(200, json=self.config)
        if path == "/config":
            return httpx.Response(200, json=self.config)
        if path == "/switchover" and method == "POST":
            if self.refuse_switchover:
                return httpx.Response(412, text=self.refuse_switchover)
            old, new = self.member(body["leader"]), self.member(body["candidate"])
            old["role"], new["role"] = new["role"], "leader"
            old["state"], new["state"] = "streaming", "running"
            new["lag"], old["lag"] = None, 0
            old["pending_restart"] = False  # the demotion restarted it
            return httpx.Response(200, text=f"Successfully switched over to {new['name']}")
        name = self.by_port(request)
        if path == "/restart" and method == "POST":
            self.member(name)["pending_restart"] = False
            self.started[name] = self.started.get(name, 0) + 1
            return httpx.Response(200, text="restarted successfully")
        if path == "/reinitialize" and method == "POST":
            self.started[name] = self.started.get(name, 0) + 1
            return httpx.Response(200, text="reinitialize started")
        if path == "/patroni":
            member = self.member(name)
            return httpx.Response(
                200,
                json={
                    "state": "running",
                    "role": member["role"],
                    "postmaster_start_time": f"start-{self.started.get(name, 0)}",
                },
            )
        return httpx.Response(404, text="not found")


@dataclass
class FakeCompose:
    """A Compose project: `up` of named services is recorded and handed to `on_up`, which
    plays what the started containers do."""

    profiles: tuple[str, ...] = ()
    ups: list[tuple[tuple[str, ...], list[str]]] = field(default_factory=list)
    on_up: Callable[[list[str]], None] | None = None

    def build(self, services: Sequence[str], on_line: Callable[[str], None]) -> None:
        pass

    def up(self, services: Sequence[str] = (), *, dependencies: bool = True) -> None:
        self.ups.append((self.profiles, list(services)))
        if self.on_up:
            self.on_up(list(services))

    def config(self) -> dict[str, Any]:
        return {}

    def logs(self, services: Sequence[str] = (), tail: str = "100") -> str:
        return ""

    def follow(self, services: Sequence[str], tail: str) -> Iterator[bytes]:
        return iter(())


@dataclass
class FakePooler:
    """PgBouncer's admin console as planned work uses it; calls are recorded."""

    is_paused: bool = False
    calls: list[str] = field(default_factory=list)
    refuse_pause: Exception | None = None

    def paused(self) -> bool:
        return self.is_paused

    def pause(self, timeout: float) -> None:
        self.calls.append("pause")
        if self.refuse_pause is not None:
            raise self.refuse_pause
        self.is_paused = True

    def resume(self) -> None:
        self.calls.append("resume")
        self.is_paused = False


def free_ports(count: int) -> list[int]:
    """Loopback ports nothing listens on, distinct, and below the kernel's ephemeral range, so
    an outgoing connection of another program cannot take one between the pick and the use."""
    chosen: list[int] = []
    for port in range(31000, 32768):
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        chosen.append(port)
        if len(chosen) == count:
            return chosen
    raise RuntimeError(f"fewer than {count} free loopback ports in 31000-32767")
