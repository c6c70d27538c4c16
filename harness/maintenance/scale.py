"""Adding and removing members for read load: pg4 and pg5 join and leave a running cluster.

Joining: the node's container starts (Compose profile `scale`) on a fresh volume, Patroni
clones it from the leader, and HAProxy, which lists pg4 and pg5 from the start (held in
maintenance while their names do not resolve), puts it in the ro pool once Patroni's
/replica answers 200 on it.

Leaving, one member at a time: Patroni stops it (a synchronous standby first hands that
role on), its member key is deleted from etcd at once rather than left to expire after
ttl, the leader drops its replication slot (Patroni 4 keeps a departed member's slot for
`member_slots_ttl`, 30 min by default, holding WAL: that setting is 0 for the moment of the
leave and then put back), and the container and its volume are removed.

Refusals (a size out of range, work under way, a leaving member that leads) come before
anything changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field, replace

import httpx

from harness.clients.haproxy import fetch_backends
from harness.clients.patroni import Cluster
from harness.core.errors import ConfigError, StateError
from harness.core.polling import poll
from harness.faults.controller import Faults
from harness.faults.model import Fault
from harness.lab.topology import (
    ETCD_MEMBERS,
    EXTRA_NODES,
    MEMBERS,
    NODES,
    SCALE_PROFILE,
    SCOPE,
    postgres_exporter,
)
from harness.maintenance.planned import SETTLED_STATES, Planned, refuse_if_busy
from harness.stack.lifecycle import STOP_TIMEOUT

MIN_MEMBERS = len(NODES)
MAX_MEMBERS = len(MEMBERS)
DCS_NAMESPACE = "/service"  # patroni.yml's namespace, without its trailing slash

ReadPool = Callable[[], list[str]]
# the nodes HAProxy's ro listener has UP


@dataclass
class ScaleResult:
    before: list[str]  # members at the start
    after: list[str]  # members at the end
    joined: dict[str, tuple[float, float]] = field(default_factory=dict)  # (streaming, in ro) s
    left: dict[str, float] = field(default_factory=dict)  # s until gone: key, slot, container

    @property
    def changed(self) -> bool:
        return bool(self.joined or self.left)


def members_of(cluster: Cluster) -> list[str]:
    """The lab's members Patroni knows, in MEMBERS order."""
    known = {m.name for m in cluster.members}
    return [n for n in MEMBERS if n in known]


def plan(present: Sequence[str], total: int) -> tuple[list[str], list[str]]:
    """(to add, to remove) to reach `total` members: extras join in order, leave last first."""
    if not MIN_MEMBERS <= total <= MAX_MEMBERS:
        raise ConfigError(
            f"--replicas {total} is out of range: the lab runs {MIN_MEMBERS} to {MAX_MEMBERS} "
            "members",
            f"pg1-pg3 always; {', '.join(EXTRA_NODES)} are the ones that come and go",
        )
    wanted = MEMBERS[:total]
    add = [n for n in wanted if n not in present]
    remove = [n for n in reversed(EXTRA_NODES) if n in present and n not in wanted]
    return add, remove


class Scale:
    """Members joining and leaving; the planned-work driver gives the cluster, the pooler's
    state and the waits, `read_pool` is a seam like its routing view."""

    def __init__(self, planned: Planned, read_pool: ReadPool | None = None) -> None:
        self.planned = planned
        self.stack = planned.stack
        self.read_pool = read_pool or self._ro_pool
        self.say = planned.say
        self.clock = planned.clock

    def _ro_pool(self) -> list[str]:
        try:
            backends = fetch_backends(self.stack.lab.url("stats", "/;csv"), timeout=0.5)
        except (httpx.HTTPError, ValueError):
            return []
        return [b.server for b in backends if b.listener == "ro" and b.up]

    # -- the request -------------------------------------------------------------------------

    def check(self, total: int) -> tuple[Cluster, list[str], list[str]]:
        """The cluster and (to add, to remove), or a refusal; nothing is changed here."""
        plan((), total)  # the range first: it needs no cluster
        cluster, _ = self.planned.cluster()
        present = sorted(
            set(members_of(cluster))
            | {c.service for c in self.stack.containers() if c.service in EXTRA_NODES},
            key=MEMBERS.index,
        )
        add, remove = plan(present, total)
        # a member that leaves may be in any state (a clone cut short, a crashed node)
        staying = replace(
            cluster,
            members=tuple(m for m in cluster.members if m.name not in remove or m.is_leader),
        )
        refuse_if_busy(staying)
        if self.planned.pooler.paused():
            raise StateError(
                "PgBouncer is paused: a switchover or other planned work is under way; "
                "nothing was changed",
                "wait for it to finish, then scale",
            )
        unsettled = [
            f"{m.name} is {m.state}" for m in staying.members if m.state not in SETTLED_STATES
        ]
        missing = [n for n in NODES if cluster.member(n) is None]
        # an extra node's container without its member (it crashed, or a leave was cut short)
        stray = [n for n in present if cluster.member(n) is None and n not in remove]
        if unsettled or missing or stray:
            found = ", ".join(
                [
                    *unsettled,
                    *(f"{n} is absent" for n in missing),
                    *(f"{n} has a container but is no member" for n in stray),
                ]
            )
            raise StateError(
                f"the cluster is not whole: {found}; nothing was changed",
                "scale a cluster whose members all run or stream (`harness status`)",
            )
        leader = cluster.leader
        if leader is not None and leader.name in remove:
            keep = ", ".join(n for n in MEMBERS[:total])
            raise StateError(
                f"{leader.name} leads and would leave: nothing was changed",
                f"move the leadership first: `harness switchover --to` one of {keep}",
            )
        return cluster, add, remove

    def scale(self, total: int, timeout: float = 300.0, *, settle: float = 0.0) -> ScaleResult:
        """Bring the cluster to `total` members (3 to 5). `settle`: seconds to wait for other
        work to finish instead of refusing at once (a scenario's heal, after a join cut short)."""
        refusals: list[StateError] = []

        def accepted() -> bool:
            try:
                self.check(total)
            except StateError as exc:
                refusals[:] = [exc]
                return False
            return True

        if settle and not poll(accepted, bool, timeout=settle, interval=1.0, clock=self.clock).held:
            raise refusals[-1]
        cluster, add, remove = self.check(total)
        result = ScaleResult(before=members_of(cluster), after=members_of(cluster))
        if add:
            result.joined = self.join(add, timeout)
        for name in remove:
            result.left[name] = self.leave(name, timeout)
        result.after = members_of(self.planned.cluster()[0])
        return result

    # -- joining -----------------------------------------------------------------------------

    def join(self, names: list[str], timeout: float) -> dict[str, tuple[float, float]]:
        """Start the nodes on fresh volumes; wait until each streams and HAProxy reads from it."""
        stale = self.stack.remove_volumes(names)  # a leftover would not fit the cluster's WAL
        if stale:
            self.say(f"removed leftover volumes {', '.join(stale)}")
        self.say(f"starting {', '.join(names)}: Patroni clones each from the leader")
        start = self.clock.now()
        self.stack.compose((SCALE_PROFILE,)).up(
            [*names, *(postgres_exporter(n) for n in names)], dependencies=False
        )
        streaming: dict[str, float] = {}
        routed: dict[str, float] = {}

        def joined() -> bool:
            cluster, _ = self.planned.cluster()
            pool = self.read_pool()
            now = self.clock.now() - start
            for name in names:
                member = cluster.member(name)
                if name not in streaming and member is not None and member.state == "streaming":
                    streaming[name] = now
                if name in streaming and name not in routed and name in pool:
                    routed[name] = now
            return len(routed) == len(names)

        self.planned.wait(
            f"{', '.join(names)} to stream and join HAProxy's ro pool",
            joined,
            timeout,
            lambda: (
                f"streaming: {', '.join(streaming) or 'none'}; in ro: "
                f"{', '.join(self.read_pool()) or 'none'}"
            ),
        )
        # scraped once it streams: a clone's PostgreSQL is down by design, not an alert
        self.stack.scrape_members()
        for name in names:
            self.say(
                f"{name} streams after {streaming[name]:.1f} s, in HAProxy's ro pool after "
                f"{routed[name]:.1f} s"
            )
        return {n: (streaming[n], routed[n]) for n in names}

    # -- leaving -----------------------------------------------------------------------------

    def leave(self, name: str, timeout: float) -> float:
        """Stop the member, delete its key, drop its slot on the leader, remove its container
        and volume. Returns seconds."""
        start = self.clock.now()
        self.say(f"removing {name}")
        # no longer scraped before it stops: a member leaving on purpose trips no alert
        running = self.stack.running_services()
        self.stack.scrape_members([n for n in EXTRA_NODES if n in running and n != name])
        gone = [c for c in self.stack.containers() if c.service in (name, postgres_exporter(name))]
        if gone:
            self.stack.runtime.act("stop", [c.name for c in gone], timeout=STOP_TIMEOUT)
        self._delete_member_key(name)
        self.planned.wait(
            f"{name} to leave Patroni's member list",
            lambda: self.planned.cluster()[0].member(name) is None,
            timeout,
            lambda: self.planned.cluster()[0].describe(),
        )
        with self._slots_not_retained():
            self.planned.wait(
                f"the leader to drop {name}'s replication slot",
                lambda: name not in self.leader_slots(),
                timeout,
                lambda: f"slots on the leader: {', '.join(self.leader_slots()) or 'none'}",
            )
        self.stack.runtime.remove(containers=[c.name for c in gone])
        self.stack.remove_volumes([name])
        self.planned.wait(
            f"HAProxy to take {name} out of the ro pool",
            lambda: name not in self.read_pool(),
            timeout,
            lambda: f"in ro: {', '.join(self.read_pool()) or 'none'}",
        )
        seconds = self.clock.now() - start
        self.say(f"{name} left in {seconds:.1f} s: no member key, no slot, no volume")
        return seconds

    def _delete_member_key(self, name: str) -> None:
        """Patroni leaves a stopped member's key to expire with its lease (ttl): delete it."""
        running = sorted(self.stack.running_services() & set(ETCD_MEMBERS))
        if not running:
            raise StateError(
                f"no etcd member is running: {name}'s member key cannot be deleted",
                "`harness status` shows the stack; `harness scale` again finishes the leave",
            )
        key = f"{DCS_NAMESPACE}/{SCOPE}/members/{name}"
        self.stack.execute(running[0], ["etcdctl", "del", key], user="etcd")

    def leader_slots(self) -> list[str]:
        leader = self.stack.leader()
        listed = self.stack.node_sql(leader, "SELECT slot_name FROM pg_replication_slots")
        return listed.split()

    @contextmanager
    def _slots_not_retained(self) -> Iterator[None]:
        """member_slots_ttl 0 while a departed member's slot is dropped, then as it was (every
        other member is present meanwhile: `check` refused otherwise)."""
        with self.stack.patroni() as patroni:
            before = patroni.config().get("member_slots_ttl")
            patroni.patch_config({"member_slots_ttl": 0})
            try:
                yield
            finally:
                patroni.patch_config({"member_slots_ttl": before})


@dataclass
class ScaleWork(Fault):
    """Scale out as a scenario's step, held, then back in as its heal: members that joined
    always leave, even when the scenario fails half-way."""

    scale: Scale
    out_to: int
    in_to: int
    description: str = ""

    def inject(self) -> None:
        self.scale.scale(self.out_to)

    def heal(self) -> None:
        self.scale.scale(self.in_to, settle=120.0)


def planned_scale_out_in(faults: Faults) -> ScaleWork:
    scale = Scale(Planned(faults.stack, faults=faults))
    return ScaleWork(
        scale,
        MAX_MEMBERS,
        MIN_MEMBERS,
        f"scale {MIN_MEMBERS} -> {MAX_MEMBERS} -> {MIN_MEMBERS} members",
    )
