"""The lab's lifecycle: prepare, build, start, prove ready, report, and tear down.

Compose builds and starts the stack; teardown and inventory go by the project's
Compose label instead, so they also clear leftovers of earlier runs and work
when .env or the rendered files are gone.
"""

from __future__ import annotations

import socket
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import httpx
from python_on_whales import Container, DockerClient, Network, Volume
from python_on_whales.exceptions import DockerException

from harness.clients.haproxy import BackendServer, fetch_backends
from harness.clients.patroni import Cluster, PatroniClient
from harness.config.render import LIVE_PARAMETERS, STANZA, RestoreTarget, write_rendered
from harness.core.errors import CommandError, HarnessError, PortInUseError, StateError
from harness.data.seed import migrate
from harness.lab.presets import TimingPreset
from harness.lab.project import ETCD_MEMBERS, FAULTPROXY, LOOPBACK, NODES, PUBLISHED_PORTS, Lab
from harness.lab.secrets import BOOTSTRAP_SECRETS, ensure_secrets, secrets_fingerprint
from harness.stack.engine import copy_extra_cas
from harness.stack.readiness import OnRound, lab_checks, wait_for

SERVICE_LABEL = "com.docker.compose.service"
SECRETS_LABEL = "org.gardenlab.secrets-id"
STOP_TIMEOUT = 30  # s; Patroni shuts PostgreSQL down cleanly well within this

Say = Callable[[str], None]


def service_of(container: Container) -> str:
    return (container.config.labels or {}).get(SERVICE_LABEL, container.name)


def stop_order(containers: Iterable[Container]) -> list[list[Container]]:
    """Groups to stop one after another: clients, the nodes, the fault proxy their replication
    passes, then etcd one member at a time.

    Patroni releases its leader key on the way out, so etcd must outlive it; etcd members
    stopped together lose quorum mid-shutdown and take 7 s instead of 3 s one by one.
    """
    clients: list[Container] = []
    nodes: list[Container] = []
    proxy: list[Container] = []
    etcd: list[Container] = []
    for c in containers:
        service = service_of(c)
        group = (
            etcd
            if service in ETCD_MEMBERS
            else nodes
            if service in NODES
            else proxy
            if service == FAULTPROXY
            else clients
        )
        group.append(c)
    return [group for group in (clients, nodes, proxy, *([m] for m in etcd)) if group]


@contextmanager
def docker_errors(hint: str = "") -> Iterator[None]:
    """Turn python-on-whales' exception into ours, keeping the command, exit code and stderr."""
    try:
        yield
    except DockerException as exc:
        raise CommandError(
            exc.docker_command, exc.return_code, exc.stderr or exc.stdout or "", hint
        ) from exc


@dataclass
class UpReport:
    phases: dict[str, float] = field(default_factory=dict)  # phase name -> seconds
    preset_changes: dict[str, object] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)
    migrations: list[str] = field(default_factory=list)

    @contextmanager
    def phase(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.phases[name] = time.monotonic() - start


@dataclass(frozen=True)
class StackStatus:
    containers: dict[str, str]  # service -> container state (running, exited, paused, ...)
    cluster: Cluster | None
    cluster_error: str
    backends: list[BackendServer]

    @property
    def healthy(self) -> bool:
        c = self.cluster
        return (
            c is not None
            and c.leader is not None
            and len(c.streaming_replicas) == len(NODES) - 1
            and bool(c.sync_standbys)
            and self.backend("rw", c.leader.name).startswith("UP")
        )

    def backend(self, listener: str, server: str) -> str:
        return next(
            (b.status for b in self.backends if b.listener == listener and b.server == server), "-"
        )


class Stack:
    def __init__(self, lab: Lab, say: Say = print) -> None:
        self.lab = lab
        self.say = say

    # -- clients -------------------------------------------------------------------------

    def compose(self, profiles: Sequence[str] = ()) -> DockerClient:
        """A client bound to the project's compose file and whichever env files exist."""
        env_files: list[str | Path] = [
            p for p in (self.lab.env_file, self.lab.rendered_dir / "rendered.env") if p.exists()
        ]
        return DockerClient(
            compose_files=[self.lab.compose_file],
            compose_env_files=env_files,
            compose_project_name=self.lab.project,
            compose_project_directory=self.lab.compose_dir,
            compose_profiles=list(profiles),
        )

    @property
    def project_filter(self) -> list[tuple[Literal["label"], str]]:
        return [("label", f"com.docker.compose.project={self.lab.project}")]

    @property
    def docker(self) -> DockerClient:
        return DockerClient()

    def patroni(self) -> PatroniClient:
        auth = ("patroni", self.lab.settings.get("PATRONI_RESTAPI_PASSWORD", ""))
        return PatroniClient(self.lab.rest_urls(), auth=auth)

    # -- inventory -----------------------------------------------------------------------

    def containers(self) -> list[Container]:
        with docker_errors():
            return self.docker.container.list(all=True, filters=self.project_filter)

    def leftovers(self) -> dict[str, list[str]]:
        """Every container, network and volume carrying the project's label."""
        with docker_errors():
            return {
                "containers": [c.name for c in self.containers()],
                "networks": [n.name for n in self.docker.network.list(filters=self.project_filter)],
                "volumes": [v.name for v in self.volumes()],
            }

    def volumes(self) -> list[Volume]:
        with docker_errors():
            return self.docker.volume.list(filters=self.project_filter)

    def running_services(self) -> set[str]:
        return {service_of(c) for c in self.containers() if c.state.running and not c.state.paused}

    # -- up ------------------------------------------------------------------------------

    def prepare(self, preset: TimingPreset, restore: RestoreTarget | None = None) -> None:
        """Secrets and rendered configuration; refuses when that would strand existing data.

        With `restore`, a cluster bootstrapped from now on comes from the backup repository.
        """
        missing = [k for k in BOOTSTRAP_SECRETS if not self.lab.settings.get(k)]
        if missing and self.volumes():
            raise StateError(
                f"data volumes of an earlier run exist but {self.lab.env_file} lacks "
                f"{', '.join(missing)}: new passwords would not open the old data",
                "restore that .env, or start over with `harness down --volumes` (deletes the data)",
            )
        added = ensure_secrets(self.lab.env_file)
        if added:
            self.say(f"generated lab secrets into {self.lab.env_file}: {', '.join(added)}")
            self.lab = self.lab.with_env_file()
        self.check_volume_secrets()
        write_rendered(preset, self.lab.rendered_dir, self.lab.compose_settings(), restore)

    def check_volume_secrets(self) -> None:
        """Existing data must have been initialised with the secrets in .env."""
        current = secrets_fingerprint(self.lab.settings)
        foreign = [
            v.name
            for v in self.volumes()
            if (v.labels or {}).get(SECRETS_LABEL, "unknown") not in ("unknown", current)
        ]
        if foreign:
            raise StateError(
                f"volumes {', '.join(sorted(foreign))} were initialised with other secrets than "
                f"those in {self.lab.env_file} (another checkout's or an older .env)",
                "restore the .env that made them, or start over with "
                "`harness down --volumes` (deletes the data)",
            )

    def check_ports(self, profiles: Sequence[str] = ()) -> None:
        """Each published port must be free, unless this stack already publishes it."""
        ours = {
            int(binding["HostPort"])
            for c in self.containers()
            if c.state.running
            for bindings in (c.network_settings.ports or {}).values()
            for binding in bindings or []
        }
        ports = self.lab.ports
        for p in PUBLISHED_PORTS:
            if p.profile is not None and p.profile not in profiles:
                continue
            port = ports[p.name]
            if port in ours:
                continue
            with socket.socket() as probe:
                probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
                try:
                    probe.bind((LOOPBACK, port))
                except OSError:
                    raise PortInUseError(p.name, port, p.env_var) from None

    def build(
        self,
        on_line: Callable[[str], None],
        services: Sequence[str] = (),
        profiles: Sequence[str] = (),
    ) -> None:
        """Build the images from the Debian base; layers are cached, so rebuilds are quick."""
        copy_extra_cas(self.lab.compose_dir / "images")
        tail: deque[str] = deque(maxlen=40)
        try:
            build = self.compose(profiles).compose.build
            for _source, raw in build(list(services) or None, stream_logs=True):
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                on_line(line)
        except DockerException as exc:
            raise CommandError(
                exc.docker_command,
                exc.return_code,
                "\n".join(tail),
                "an apt-get step failing usually means the Debian mirror is unreachable",
            ) from exc

    def start(self) -> None:
        with docker_errors("`harness down` clears a half-started stack"):
            self.compose().compose.up(detach=True, remove_orphans=True, quiet=True)

    def wait_ready(self, timeout: float, on_round: OnRound | None = None) -> float:
        with self.patroni() as patroni:
            return wait_for(
                lab_checks(self.lab, patroni), timeout, on_round=on_round, log_tail=self.log_tail
            )

    def apply_preset(self, preset: TimingPreset) -> dict[str, object]:
        """Bring Patroni's live timings to the preset and LIVE_PARAMETERS in (bootstrap applies
        the dynamic configuration only once; archive_mode then waits for a restart)."""
        wanted = preset.dcs_settings()
        with self.patroni() as patroni:
            live = patroni.config()
            changes: dict[str, object] = {k: v for k, v in wanted.items() if live.get(k) != v}
            parameters = live.get("postgresql", {}).get("parameters", {})
            missing = {k: v for k, v in LIVE_PARAMETERS.items() if parameters.get(k) != v}
            if missing:
                changes["postgresql"] = {"parameters": missing}
            if changes:
                patroni.patch_config(changes)
        return changes

    def up(
        self,
        preset: TimingPreset,
        timeout: float,
        *,
        ensure_engine: Callable[[], None],
        on_build_line: Callable[[str], None],
        on_round: OnRound | None = None,
        restore: RestoreTarget | None = None,
        profiles: Sequence[str] = (),
    ) -> UpReport:
        """Bring the core stack to proven readiness; `profiles` only widens the port check,
        their services start afterwards (harness.stack.supabase)."""
        report = UpReport()
        with report.phase("engine"):
            ensure_engine()
        with report.phase("prepare"):
            self.prepare(preset, restore)
            self.check_ports(profiles)
        with report.phase("build"):
            self.build(on_build_line)
        with report.phase("start"):
            self.start()
        with report.phase("ready"):
            self.wait_ready(timeout, on_round)
        with report.phase("preset"):
            report.preset_changes = self.apply_preset(preset)
            report.restarted = self.restart_pending()
            if report.restarted:
                self.wait_ready(timeout, on_round)
        with report.phase("stanza"):
            # The repository must know the cluster before the leader's WAL can be archived.
            self.pgbackrest("stanza-create", node=self.leader())
        with report.phase("migrate"):
            report.migrations = migrate(self.lab)
        return report

    def restart_pending(self) -> list[str]:
        """Restart the members whose settings wait for it (archive_mode on a cluster made
        before archiving existed): replicas first, the leader last."""
        urls = dict(zip(NODES, self.lab.rest_urls(), strict=True))
        with self.patroni() as patroni:
            pending = [m for m in patroni.cluster().members if m.pending_restart]
            ordered = sorted(pending, key=lambda m: m.is_leader)
            for member in ordered:
                patroni.restart(urls[member.name])
        return [m.name for m in ordered]

    # -- down ----------------------------------------------------------------------------

    def down(self, volumes: bool = False) -> dict[str, list[str]]:
        """Stop gracefully and remove everything the project made; return what was removed."""
        found = self.leftovers()
        docker = self.docker
        with docker_errors():
            containers = self.containers()
            paused = [c for c in containers if c.state.paused]
            if paused:
                docker.container.unpause(paused)
            for tier in stop_order(c for c in containers if c.state.running):
                docker.container.stop(tier, time=STOP_TIMEOUT)
            if containers:
                docker.container.remove(containers, force=True)
            if found["networks"]:
                docker.network.remove(list[str | Network](found["networks"]))
            if volumes and found["volumes"]:
                docker.volume.remove(list[str | Volume](found["volumes"]))
        if not volumes:
            found["volumes"] = []
        return found

    def remove_volumes(self, services: Iterable[str]) -> list[str]:
        """Delete the named volumes of these services (the stack must be down)."""
        names = {f"{self.lab.project}_{service}" for service in services}
        doomed = [v.name for v in self.volumes() if v.name in names]
        with docker_errors():
            if doomed:
                self.docker.volume.remove(list[str | Volume](doomed))
        return doomed

    # -- observation ---------------------------------------------------------------------

    def status(self) -> StackStatus:
        containers = {service_of(c): c.state.status or "unknown" for c in self.containers()}
        cluster, error = None, ""
        try:
            with self.patroni() as patroni:
                cluster = patroni.cluster()
        except HarnessError as exc:
            error = exc.message
        try:
            backends = fetch_backends(self.lab.stats_url())
        except (httpx.HTTPError, ValueError):  # a down HAProxy is a status, not an error
            backends = []
        return StackStatus(containers, cluster, error, backends)

    def container(self, service: str) -> Container:
        """The container of a service, as it is now."""
        for container in self.containers():
            if service_of(container) == service:
                return container
        raise HarnessError(f"{service} has no container", "is the lab up? `make status`")

    def node_sql(self, node: str, query: str) -> str:
        """A query on one node over its local socket: answers even while its network is cut."""
        with docker_errors():
            result = self.container(node).execute(
                ["psql", "-X", "-U", "postgres", "-d", "postgres", "-Atc", query],
                user="postgres",
                tty=False,
            )
        return str(result).strip()

    def leader(self) -> str:
        with self.patroni() as patroni:
            leader = patroni.cluster().leader
        if leader is None:
            raise HarnessError("the cluster has no leader", "`make status` shows the cluster")
        return leader.name

    def pgbackrest(self, *args: str, node: str | None = None) -> str:
        """pgBackRest as postgres in a node (the given one, else any running one)."""
        running = sorted(self.running_services() & set(NODES))
        target = node or (running[0] if running else None)
        if target is None:
            raise HarnessError("no database node is running", "`make dev-up` starts the lab")
        with docker_errors("pgBackRest's message above says what it refused"):
            result = self.container(target).execute(
                ["pgbackrest", f"--stanza={STANZA}", *args], user="postgres", tty=False
            )
        return str(result).strip()

    def log_tail(self, lines: int = 15) -> str:
        try:
            return str(self.compose().compose.logs(tail=str(lines), no_log_prefix=False))
        except DockerException as exc:
            return f"(logs unavailable: {(exc.stderr or '').strip()})"
