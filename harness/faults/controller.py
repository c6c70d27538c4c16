"""Faults that always heal.

Each fault is an object: `inject()`, `heal()`, and a context manager that heals on the
way out whatever happened inside. `Faults.heal_all()` is the backstop: it reverses every
kind of fault this module can leave (paused or stopped containers, iptables rules,
toxics and disabled links on the fault proxy), whoever injected it.

How each link is faulted:
- containers (kill, stop, pause, restart): Docker;
- isolation, cuts and partitions: iptables rules in the database nodes' own chains
  (GARDENLAB_IN / GARDENLAB_OUT), the only containers with NET_ADMIN;
- latency, jitter, bandwidth, timeouts, resets, a link down: toxics on the fault proxy,
  which carries replication to each node (repl-pgN) and the proxied client ports.
"""

from __future__ import annotations

import re
from abc import ABC, abstractmethod
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
from python_on_whales import Container
from python_on_whales.exceptions import DockerException

from harness.core.errors import CommandError, ConfigError, HarnessError
from harness.lab.project import ETCD_MEMBERS, FAULTPROXY, NODES
from harness.stack.lifecycle import Stack, docker_errors, service_of

ROLES = ("leader", "sync-standby", "replica")
SERVICES = (*NODES, *ETCD_MEMBERS, "haproxy", "pgbouncer", FAULTPROXY)
ENDPOINT_LINKS = {"rw": "client-rw", "ro": "client-ro", "pooler": "client-pooler"}
CHAINS = {"in": ("GARDENLAB_IN", "INPUT"), "out": ("GARDENLAB_OUT", "OUTPUT")}
STREAMS = ("downstream", "upstream")


class AlreadyInjected(HarnessError):
    """The same fault is in place already; nothing was changed."""


class Fault(ABC):
    """Something broken on purpose; `with fault:` guarantees the heal."""

    description: str

    @abstractmethod
    def inject(self) -> None: ...

    @abstractmethod
    def heal(self) -> None: ...

    def apply(self) -> None:
        """Inject; a fault that fails half-way is healed, so nothing is left half-made."""
        try:
            self.inject()
        except AlreadyInjected:
            raise
        except BaseException:
            self.heal()
            raise

    def __enter__(self) -> Fault:
        self.apply()
        return self

    def __exit__(self, *exc: object) -> None:
        self.heal()


@dataclass
class ContainerFault(Fault):
    faults: Faults
    service: str
    action: str  # kill, stop, pause, restart

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"{self.action} {self.service}"

    def inject(self) -> None:
        container = self.faults.container(self.service)
        docker = self.faults.stack.docker
        with docker_errors():
            if self.action == "kill":
                docker.container.kill(container)
            elif self.action == "stop":
                docker.container.stop(container, time=30)
            elif self.action == "pause":
                docker.container.pause(container)
            else:
                docker.container.restart(container)

    def heal(self) -> None:
        container = self.faults.container(self.service)  # listed afresh: current state
        docker = self.faults.stack.docker
        with docker_errors():
            if container.state.paused:
                docker.container.unpause(container)
            elif not container.state.running:
                docker.container.start(container)


@dataclass
class IptablesFault(Fault):
    """DROP rules in one node's own chains; healing deletes exactly these rules."""

    faults: Faults
    service: str
    rules: list[tuple[str, list[str]]]  # (direction "in"/"out", match arguments)
    description: str

    def inject(self) -> None:
        self.faults.ensure_chains(self.service)
        for direction, match in self.rules:
            self.faults.iptables(self.service, "-A", CHAINS[direction][0], *match, "-j", "DROP")

    def heal(self) -> None:
        for direction, match in self.rules:
            self.faults.iptables(
                self.service, "-D", CHAINS[direction][0], *match, "-j", "DROP", check=False
            )


@dataclass
class ToxicFault(Fault):
    faults: Faults
    link: str
    toxic: dict[str, Any]

    @property
    def description(self) -> str:  # type: ignore[override]
        attrs = ", ".join(f"{k}={v}" for k, v in self.toxic["attributes"].items())
        return f"{self.toxic['type']} on {self.link} ({self.toxic['stream']}: {attrs})"

    def inject(self) -> None:
        path = f"/proxies/{self.link}/toxics"
        if self.faults.proxy_request("GET", f"{path}/{self.toxic['name']}", missing_ok=True):
            raise AlreadyInjected(
                f"{self.toxic['type']} is already on {self.link}", "`harness fault heal` first"
            )
        self.faults.proxy_request("POST", path, self.toxic)

    def heal(self) -> None:
        self.faults.proxy_request(
            "DELETE", f"/proxies/{self.link}/toxics/{self.toxic['name']}", missing_ok=True
        )


@dataclass
class LinkDown(Fault):
    faults: Faults
    link: str

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"link {self.link} down"

    def inject(self) -> None:
        self.faults.proxy_request("PATCH", f"/proxies/{self.link}", {"enabled": False})

    def heal(self) -> None:
        self.faults.proxy_request("PATCH", f"/proxies/{self.link}", {"enabled": True})


@dataclass
class Together(Fault):
    """Several faults at once; healed in reverse order."""

    parts: list[Fault]

    @property
    def description(self) -> str:  # type: ignore[override]
        return " + ".join(part.description for part in self.parts)

    def inject(self) -> None:
        for part in self.parts:
            part.inject()

    def heal(self) -> None:
        for part in reversed(self.parts):
            part.heal()


@dataclass
class Switchover(Fault):
    """A planned switchover through Patroni's REST API: nothing to heal afterwards."""

    faults: Faults
    leader: str
    candidate: str

    @property
    def description(self) -> str:  # type: ignore[override]
        return f"switchover {self.leader} -> {self.candidate}"

    def inject(self) -> None:
        with self.faults.stack.patroni() as patroni:
            patroni.switchover(self.leader, self.candidate)

    def heal(self) -> None:
        pass


@dataclass
class Leftovers:
    """Traces of faults; all empty means the stack carries none."""

    paused: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    rules: dict[str, list[str]] = field(default_factory=dict)
    toxics: dict[str, list[str]] = field(default_factory=dict)
    disabled_links: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.paused, self.stopped, self.rules, self.toxics, self.disabled_links))


class Faults:
    """The fault controller for one stack: resolves targets and builds faults."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.http = httpx.Client(base_url=stack.lab.faultproxy_url(), timeout=5)

    # -- targets -----------------------------------------------------------------------------

    def resolve(self, target: str) -> str:
        """A service name, or a role resolved now: leader, sync-standby, replica."""
        if target in SERVICES:
            return target
        if target not in ROLES:
            raise ConfigError(
                f"unknown node or role {target!r}",
                f"choose one of {', '.join(SERVICES)}, or a role: {', '.join(ROLES)}",
            )
        with self.stack.patroni() as patroni:
            cluster = patroni.cluster()
        if target == "leader":
            candidates = [cluster.leader] if cluster.leader else []
        elif target == "sync-standby":
            candidates = cluster.sync_standbys
        else:
            candidates = [m for m in cluster.streaming_replicas if not m.is_sync_standby]
            candidates = candidates or cluster.streaming_replicas
        if not candidates:
            raise HarnessError(
                f"no member has the role {target} now ({cluster.describe()})",
                "wait for the cluster to settle (`harness status`) or name a node",
            )
        return candidates[0].name

    def resolve_node(self, target: str) -> str:
        service = self.resolve(target)
        if service not in NODES:
            raise ConfigError(
                f"{target!r} is not a database node",
                f"this fault needs one of {', '.join(NODES)} or a role: {', '.join(ROLES)}",
            )
        return service

    def resolve_link(self, target: str) -> str:
        """A proxy link: rw/ro/pooler client paths, or a node's (or role's) replication link."""
        if target in ENDPOINT_LINKS:
            return ENDPOINT_LINKS[target]
        return f"repl-{self.resolve_node(target)}"

    def container(self, service: str) -> Container:
        return self.stack.container(service)

    def address(self, service: str) -> str:
        networks = self.container(service).network_settings.networks or {}
        for network in networks.values():
            if network.ip_address:
                return network.ip_address
        raise HarnessError(f"{service} has no address (stopped or disconnected?)")

    # -- mechanisms --------------------------------------------------------------------------

    def iptables(self, service: str, *args: str, check: bool = True) -> str:
        command = ["iptables", "-w", *args]
        try:
            return str(self.container(service).execute(command, user="root", tty=False))
        except DockerException as exc:
            if not check:
                return ""
            raise CommandError(exc.docker_command, exc.return_code, exc.stderr or "") from exc

    def ensure_chains(self, service: str) -> None:
        for chain, builtin in CHAINS.values():
            self.iptables(service, "-N", chain, check=False)  # fails harmlessly when it exists
            try:
                self.iptables(service, "-C", builtin, "-j", chain)
            except CommandError:
                self.iptables(service, "-I", builtin, "-j", chain)

    def rules_in(self, service: str) -> list[str]:
        rules = []
        for chain, _ in CHAINS.values():
            listing = self.iptables(service, "-S", chain, check=False)
            rules += [line for line in listing.splitlines() if line.startswith("-A")]
        return rules

    def proxy_request(
        self, method: str, path: str, body: Any = None, missing_ok: bool = False
    ) -> Any:
        try:
            response = self.http.request(method, path, json=body)
        except httpx.HTTPError as exc:
            raise HarnessError(
                f"the fault proxy does not answer at {self.stack.lab.faultproxy_url()}: {exc}",
                "is the lab up? `make dev-up`",
            ) from exc
        if response.status_code == 404 and missing_ok:
            return None
        if response.status_code >= 400:
            raise HarnessError(f"fault proxy refused {method} {path}: {response.text.strip()}")
        return response.json() if response.content else None

    # -- faults ------------------------------------------------------------------------------

    def container_fault(self, action: str, target: str) -> ContainerFault:
        return ContainerFault(self, self.resolve(target), action)

    def isolate(self, target: str) -> IptablesFault:
        node = self.resolve_node(target)
        rules = [("in", ["!", "-i", "lo"]), ("out", ["!", "-o", "lo"])]
        return IptablesFault(self, node, rules, f"isolate {node} from everything")

    def _cut(self, node: str, others: Sequence[str], what: str) -> IptablesFault:
        addresses = [self.address(other) for other in others]
        rules = [("in", ["-s", ip]) for ip in addresses] + [("out", ["-d", ip]) for ip in addresses]
        return IptablesFault(self, node, rules, f"cut {node} from {what}")

    def cut_from_etcd(self, target: str) -> IptablesFault:
        return self._cut(self.resolve_node(target), ETCD_MEMBERS, "etcd")

    def cut_from_peers(self, target: str) -> IptablesFault:
        """Other nodes, and the proxy that carries replication between them."""
        node = self.resolve_node(target)
        peers = [n for n in NODES if n != node]
        return self._cut(node, [*peers, FAULTPROXY], "its peers")

    def partition(self, source: str, destination: str, one_way: bool = False) -> IptablesFault:
        """Traffic from source to destination is dropped (and back too unless one-way)."""
        src, dst = self.resolve(source), self.resolve(destination)
        if src in NODES:
            node, rules = src, [("out", ["-d", self.address(dst)])]
            rules += [] if one_way else [("in", ["-s", self.address(dst)])]
        elif dst in NODES:
            node, rules = dst, [("in", ["-s", self.address(src)])]
            rules += [] if one_way else [("out", ["-d", self.address(src)])]
        else:
            raise ConfigError(
                f"cannot partition {src} from {dst}: rules live in database nodes",
                "one side must be pg1, pg2, pg3 or a role",
            )
        arrow = "->" if one_way else "<->"
        return IptablesFault(self, node, rules, f"partition {src} {arrow} {dst}")

    def toxic(
        self, target: str, kind: str, attributes: dict[str, int], stream: str = "downstream"
    ) -> ToxicFault:
        if stream not in STREAMS:
            raise ConfigError(f"unknown stream {stream!r}", "choose downstream or upstream")
        toxic = {
            "name": f"gardenlab-{kind}-{stream}",
            "type": kind,
            "stream": stream,
            "toxicity": 1.0,
            "attributes": attributes,
        }
        return ToxicFault(self, self.resolve_link(target), toxic)

    def link_down(self, target: str) -> LinkDown:
        return LinkDown(self, self.resolve_link(target))

    def together(self, *parts: Fault) -> Together:
        return Together(list(parts))

    def switchover(self, candidate: str = "sync-standby") -> Switchover:
        return Switchover(self, self.resolve_node("leader"), self.resolve_node(candidate))

    # -- the backstop ------------------------------------------------------------------------

    def leftovers(self) -> Leftovers:
        found = Leftovers()
        for container in self.stack.containers():
            service = service_of(container)
            if container.state.paused:
                found.paused.append(service)
            elif not container.state.running:
                found.stopped.append(service)
            elif service in NODES and (rules := self.rules_in(service)):
                found.rules[service] = rules
        found.toxics, found.disabled_links = self.proxy_faults()
        return found

    def proxy_faults(self) -> tuple[dict[str, list[str]], list[str]]:
        """Toxics per link and disabled links on the fault proxy (none when it is down)."""
        try:
            proxies = self.http.get("/proxies").json()
        except httpx.HTTPError:
            return {}, []
        toxics = {n: [t["name"] for t in p["toxics"]] for n, p in proxies.items() if p["toxics"]}
        return toxics, [n for n, p in proxies.items() if not p["enabled"]]

    def heal_all(self) -> list[str]:
        """Undo every fault this module can leave; return what was done."""
        done: list[str] = []
        docker = self.stack.docker
        with docker_errors():
            for container in self.stack.containers():
                service = service_of(container)
                if container.state.paused:
                    docker.container.unpause(container)
                    done.append(f"unpaused {service}")
                elif not container.state.running:
                    docker.container.start(container)
                    done.append(f"started {service}")
        for node in NODES:
            rules = self.rules_in(node)
            if rules:
                for chain, _ in CHAINS.values():
                    self.iptables(node, "-F", chain, check=False)
                done.append(f"removed {len(rules)} iptables rules in {node}")
        toxics, disabled = self.proxy_faults()
        if toxics or disabled:
            self.proxy_request("POST", "/reset")
            count = sum(len(names) for names in toxics.values())
            done.append(f"reset the fault proxy ({count} toxics, {len(disabled)} links re-enabled)")
        return done


DURATION = re.compile(r"^(\d+(?:\.\d+)?)(ms|s)$")
RATE = re.compile(r"^(\d+(?:\.\d+)?)(kb|mb)/s$", re.IGNORECASE)


def parse_duration_ms(text: str) -> int:
    """'200ms', '1.5s' or '0' to milliseconds."""
    if text == "0":
        return 0
    match = DURATION.match(text.strip())
    if not match:
        raise ConfigError(f"malformed duration {text!r}", "write it like 200ms or 1.5s")
    value, unit = float(match[1]), match[2]
    return round(value * (1000 if unit == "s" else 1))


def parse_rate_kbps(text: str) -> int:
    """'100KB/s' or '2MB/s' to KB/s (1 KB = 1000 bytes, as Toxiproxy counts)."""
    match = RATE.match(text.strip())
    if not match:
        raise ConfigError(f"malformed rate {text!r}", "write it like 100KB/s or 2MB/s")
    value = float(match[1]) * (1000 if match[2].lower() == "mb" else 1)
    if value < 1:
        raise ConfigError(f"rate {text!r} is below 1 KB/s", "use at least 1KB/s")
    return round(value)
