"""The fault controller for one stack: resolves roles and services, builds the faults, and
is the backstop (`heal_all`) that reverses every kind of fault this package can leave,
whoever injected it.

How each link is faulted:
- containers (kill, stop, pause, restart): the container runtime;
- isolation, cuts and partitions: iptables rules in the database nodes' own chains
  (GARDENLAB_IN / GARDENLAB_OUT), the only containers with NET_ADMIN;
- latency, jitter, bandwidth, timeouts, resets, a link down: toxics on the fault proxy,
  which carries replication to each node (repl-pgN), the proxied client ports, and the
  import service's database link (import-rw).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from harness.clients.faultproxy import FaultProxyClient
from harness.core.errors import CommandError, ConfigError, HarnessError
from harness.faults.model import (
    CHAINS,
    STREAMS,
    ContainerAction,
    ContainerFault,
    Fault,
    IptablesFault,
    LinkDown,
    Rule,
    Stages,
    Stream,
    Switchover,
    Together,
    ToxicFault,
)
from harness.lab.topology import (
    APP_LINKS,
    CSV_IMPORT,
    ENDPOINTS,
    ETCD_MEMBERS,
    FAULTPROXY,
    HAPROXY,
    MEMBERS,
    NODES,
    PGBOUNCER,
    S3,
    S3_LINK,
)
from harness.stack.lifecycle import Stack

Role = Literal["leader", "sync-standby", "replica"]
ROLES: tuple[Role, ...] = ("leader", "sync-standby", "replica")
SERVICES = (*MEMBERS, *ETCD_MEMBERS, HAPROXY, PGBOUNCER, FAULTPROXY, CSV_IMPORT)
ISOLATE: list[Rule] = [("in", ("!", "-i", "lo")), ("out", ("!", "-o", "lo"))]


def drop_rules(
    addresses: Sequence[str], *, inbound: bool = True, outbound: bool = True
) -> list[Rule]:
    """DROP rules against these addresses: what comes from them, what goes to them."""
    rules: list[Rule] = [("in", ("-s", ip)) for ip in addresses] if inbound else []
    return rules + ([("out", ("-d", ip)) for ip in addresses] if outbound else [])


@dataclass
class Traces:
    """Traces of faults; all empty means the stack carries none."""

    paused: list[str] = field(default_factory=list)
    stopped: list[str] = field(default_factory=list)
    rules: dict[str, list[str]] = field(default_factory=dict)
    toxics: dict[str, list[str]] = field(default_factory=dict)
    disabled_links: list[str] = field(default_factory=list)

    def __bool__(self) -> bool:
        return any((self.paused, self.stopped, self.rules, self.toxics, self.disabled_links))


class Faults:
    """Builds faults for one stack and carries them out (the FaultTarget they act on)."""

    def __init__(self, stack: Stack, proxy: FaultProxyClient | None = None) -> None:
        self.stack = stack
        self.proxy = proxy or FaultProxyClient(stack.lab.url("faultproxy"))

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
        if service not in MEMBERS:
            raise ConfigError(
                f"{target!r} is not a database node",
                f"this fault needs one of {', '.join(MEMBERS)} or a role: {', '.join(ROLES)}",
            )
        if service not in NODES and service not in self.stack.running_services():
            raise ConfigError(
                f"{service} is not running", "`harness scale --replicas 5` adds pg4 and pg5"
            )
        return service

    def members(self) -> list[str]:
        """The database nodes running now: pg1-pg3, and pg4 and pg5 once scaled out."""
        return [*NODES, *self.stack.extra_members()]

    def resolve_link(self, target: str) -> str:
        """A proxy link: rw/ro/pooler client paths, an application service's database link,
        pgBackRest's link to the S3 repository, or a node's (or role's) replication link."""
        if target in ENDPOINTS:
            return ENDPOINTS[target].link
        if target in APP_LINKS:
            return APP_LINKS[target].name
        if target == S3:
            return S3_LINK.name
        return f"repl-{self.resolve_node(target)}"

    def address(self, service: str) -> str:
        addresses = self.stack.container(service).addresses
        if not addresses:
            raise HarnessError(f"{service} has no address (stopped or disconnected?)")
        return addresses[0]

    # -- what faults act on (FaultTarget) ----------------------------------------------------

    def act(self, action: ContainerAction | Literal["unpause", "start"], service: str) -> None:
        self.stack.runtime.act(action, [self.stack.container(service).name])

    def container_state(self, service: str) -> tuple[bool, bool]:
        container = self.stack.container(service)
        return container.running, container.paused

    def iptables(self, service: str, *args: str, check: bool = True) -> str:
        """iptables in a node; with check False a refusal (no such rule or chain) is ""."""
        try:
            return self.stack.execute(service, ["iptables", "-w", *args])
        except CommandError:
            if check:
                raise
            return ""

    def ensure_chains(self, service: str) -> None:
        for chain, builtin in CHAINS.values():
            self.iptables(service, "-N", chain, check=False)  # refused when it exists
            try:
                self.iptables(service, "-C", builtin, "-j", chain)
            except CommandError:
                self.iptables(service, "-I", builtin, "-j", chain)

    def add_rules(self, service: str, rules: list[Rule]) -> None:
        self.ensure_chains(service)
        for direction, match in rules:
            self.iptables(service, "-A", CHAINS[direction][0], *match, "-j", "DROP")

    def delete_rules(self, service: str, rules: list[Rule]) -> None:
        for direction, match in rules:
            self.iptables(
                service, "-D", CHAINS[direction][0], *match, "-j", "DROP", check=False
            )  # already gone, or the node is gone

    def rules_in(self, service: str) -> list[str]:
        rules = []
        for chain, _ in CHAINS.values():
            listing = self.iptables(service, "-S", chain, check=False)  # no chain: no rules
            rules += [line for line in listing.splitlines() if line.startswith("-A")]
        return rules

    def proxy_request(
        self, method: str, path: str, body: Any = None, missing_ok: bool = False
    ) -> Any:
        return self.proxy.request(method, path, body, missing_ok)

    def switchover(self, leader: str, candidate: str) -> None:
        with self.stack.patroni() as patroni:
            patroni.switchover(leader, candidate)

    # -- faults ------------------------------------------------------------------------------

    def container_fault(self, action: ContainerAction, target: str) -> ContainerFault:
        return ContainerFault(self, self.resolve(target), action)

    def isolate(self, target: str) -> IptablesFault:
        node = self.resolve_node(target)
        return IptablesFault(self, node, list(ISOLATE), f"isolate {node} from everything")

    def _cut(self, node: str, others: Sequence[str], what: str) -> IptablesFault:
        rules = drop_rules([self.address(other) for other in others])
        return IptablesFault(self, node, rules, f"cut {node} from {what}")

    def cut_from_etcd(self, target: str) -> IptablesFault:
        return self._cut(self.resolve_node(target), ETCD_MEMBERS, "etcd")

    def cut_from_peers(self, target: str) -> IptablesFault:
        """Other nodes, and the proxy that carries replication between them."""
        node = self.resolve_node(target)
        peers = [n for n in self.members() if n != node]
        return self._cut(node, [*peers, FAULTPROXY], "its peers")

    def partition(self, source: str, destination: str, one_way: bool = False) -> IptablesFault:
        """Traffic from source to destination is dropped (and back too unless one-way)."""
        src, dst = self.resolve(source), self.resolve(destination)
        if src in MEMBERS:
            node = src
            rules = drop_rules([self.address(dst)], inbound=not one_way)
        elif dst in MEMBERS:
            node = dst
            rules = drop_rules([self.address(src)], outbound=not one_way)
        else:
            raise ConfigError(
                f"cannot partition {src} from {dst}: rules live in database nodes",
                "one side must be a database node (pg1-pg5) or a role",
            )
        arrow = "->" if one_way else "<->"
        return IptablesFault(self, node, rules, f"partition {src} {arrow} {dst}")

    def toxic(
        self, target: str, kind: str, attributes: dict[str, int], stream: str = "downstream"
    ) -> ToxicFault:
        if stream not in STREAMS:
            raise ConfigError(f"unknown stream {stream!r}", "choose downstream or upstream")
        chosen: Stream = "upstream" if stream == "upstream" else "downstream"
        toxic = {
            "name": f"gardenlab-{kind}-{chosen}",
            "type": kind,
            "stream": chosen,
            "toxicity": 1.0,
            "attributes": attributes,
        }
        return ToxicFault(self, self.resolve_link(target), toxic)

    def link_down(self, target: str) -> LinkDown:
        return LinkDown(self, self.resolve_link(target))

    def together(self, *parts: Fault) -> Together:
        return Together(list(parts))

    def stages(self, *stages: tuple[Fault, float]) -> Stages:
        return Stages(list(stages))

    def planned_switchover(self, candidate: str = "sync-standby") -> Switchover:
        return Switchover(self, self.resolve_node("leader"), self.resolve_node(candidate))

    # -- the backstop ------------------------------------------------------------------------

    def traces(self) -> Traces:
        found = Traces()
        for container in self.stack.containers():
            if container.paused:
                found.paused.append(container.service)
            elif not container.running:
                found.stopped.append(container.service)
            elif container.service in MEMBERS and (rules := self.rules_in(container.service)):
                found.rules[container.service] = rules
        found.toxics, found.disabled_links = self.proxy.faults()
        return found

    def heal_all(self) -> list[str]:
        """Undo every fault this package can leave; return what was done."""
        done: list[str] = []
        runtime = self.stack.runtime
        for container in self.stack.containers():
            if container.paused:
                runtime.act("unpause", [container.name])
                done.append(f"unpaused {container.service}")
            elif not container.running:
                runtime.act("start", [container.name])
                done.append(f"started {container.service}")
        for node in self.members():
            rules = self.rules_in(node)
            if rules:
                for chain, _ in CHAINS.values():
                    with contextlib.suppress(CommandError):
                        self.iptables(node, "-F", chain)
                done.append(f"removed {len(rules)} iptables rules in {node}")
        toxics, disabled = self.proxy.faults()
        if toxics or disabled:
            self.proxy.reset()
            count = sum(len(names) for names in toxics.values())
            done.append(f"reset the fault proxy ({count} toxics, {len(disabled)} links re-enabled)")
        return done
