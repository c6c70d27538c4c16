"""The lab's lifecycle: prepare, build, start, prove ready, report, and tear down.

Compose builds and starts the stack; teardown and inventory go by the project's Compose
label through the container runtime instead, so they also clear leftovers of earlier runs
and work when .env or the rendered files are gone. What `up` does beyond the containers
(the backup stanza, the schema, the profiles) is harness.provision's.
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime

import httpx

from harness.clients.compose import ComposeProject, DockerCompose
from harness.clients.docker import (
    COMPOSE_CONTAINER_LABEL,
    PROJECT_LABEL,
    Container,
    ContainerRuntime,
    DockerRuntime,
    Volume,
)
from harness.clients.haproxy import BackendServer, fetch_backends
from harness.clients.monitoring import AlertmanagerClient, FiringAlert, PrometheusClient, Target
from harness.clients.patroni import Cluster, PatroniClient
from harness.config.monitoring import (
    MONITORING_IMAGE,
    PROMETHEUS_DIR,
    RULES_FILE,
    blind_rules,
    promtool_refusal,
    write_member_targets,
)
from harness.config.render import (
    DATA_DIR,
    RESTART_PARAMETERS,
    RestoreTarget,
    lab_live_parameters,
    write_rendered,
)
from harness.core.errors import CommandError, ConfigError, HarnessError, PortInUseError, StateError
from harness.core.polling import poll
from harness.core.progress import Say
from harness.lab.presets import TimingPreset
from harness.lab.project import LOOPBACK, PUBLISHED_PORTS, Lab
from harness.lab.secrets import BOOTSTRAP_SECRETS, ensure_secrets, secrets_fingerprint
from harness.lab.tls import LAB_PATHS
from harness.lab.topology import (
    APP_ENDPOINT,
    ENDPOINTS,
    ETCD_MEMBERS,
    EXTRA_NODES,
    FAULTPROXY,
    MEMBERS,
    NODES,
    SOURCE_SERVICE,
    TLS_NAMES,
    EndpointName,
)
from harness.stack.engine import copy_extra_cas
from harness.stack.health import Finding, stack_findings
from harness.stack.readiness import OnRound, ready_checks, wait_for

SECRETS_LABEL = "org.gardenlab.secrets-id"
STOP_TIMEOUT = 30  # s; Patroni shuts PostgreSQL down cleanly well within this

ComposeFactory = Callable[[Lab, Sequence[str]], ComposeProject]


def lab_compose(lab: Lab, profiles: Sequence[str]) -> ComposeProject:
    """The project's compose file with whichever env files exist."""
    return DockerCompose(
        [lab.compose_file],
        [lab.env_file, lab.rendered_dir / "rendered.env"],
        lab.project,
        lab.compose_dir,
        profiles,
    )


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
        if c.service in ETCD_MEMBERS:
            etcd.append(c)
        elif c.service in NODES:
            nodes.append(c)
        elif c.service == FAULTPROXY:
            proxy.append(c)
        else:
            clients.append(c)
    return [group for group in (clients, nodes, proxy, *([m] for m in etcd)) if group]


@dataclass
class UpReport:
    phases: dict[str, float] = field(default_factory=dict)  # phase name -> seconds
    preset_changes: dict[str, object] = field(default_factory=dict)
    restarted: list[str] = field(default_factory=list)

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
    alerts: list[FiringAlert] = field(default_factory=list)
    targets: list[Target] = field(default_factory=list)
    monitoring_error: str = ""  # why alerts and targets are unknown

    @property
    def targets_down(self) -> list[Target]:
        return [t for t in self.targets if not t.up]

    @property
    def findings(self) -> list[Finding]:
        return stack_findings(self.cluster, self.backends, replicas=len(NODES) - 1)

    @property
    def healthy(self) -> bool:
        return all(f.passed for f in self.findings)

    def backend(self, listener: str, server: str) -> str:
        return next(
            (b.status for b in self.backends if b.listener == listener and b.server == server), "-"
        )


class Stack:
    """One Compose project of the lab, driven through a container runtime (a seam)."""

    def __init__(
        self,
        lab: Lab,
        say: Say = print,
        runtime: ContainerRuntime | None = None,
        compose: ComposeFactory = lab_compose,
        http: httpx.BaseTransport | None = None,
    ) -> None:
        self.lab = lab
        self.say = say
        self.runtime: ContainerRuntime = runtime or DockerRuntime()
        self._compose = compose
        self._http = http  # Patroni's transport: None is the network, a fake in tests

    # -- clients -------------------------------------------------------------------------

    def compose(self, profiles: Sequence[str] = ()) -> ComposeProject:
        return self._compose(self.lab, profiles)

    @property
    def label(self) -> str:
        return f"{PROJECT_LABEL}={self.lab.project}"

    def patroni(self) -> PatroniClient:
        auth = ("patroni", self.lab.settings.get("PATRONI_RESTAPI_PASSWORD", ""))
        return PatroniClient(
            self.lab.rest_urls(), auth=auth, transport=self._http, ca_file=self.lab.rest_ca
        )

    # -- inventory -----------------------------------------------------------------------

    def containers(self) -> list[Container]:
        return self.runtime.containers(self.label, COMPOSE_CONTAINER_LABEL)

    def volumes(self) -> list[Volume]:
        return self.runtime.volumes(self.label)

    def resources(self) -> dict[str, list[str]]:
        """Every container, network and volume carrying the project's label."""
        return {
            "containers": [c.name for c in self.containers()],
            "networks": self.runtime.networks(self.label),
            "volumes": [v.name for v in self.volumes()],
        }

    def running_services(self) -> set[str]:
        return {c.service for c in self.containers() if c.serving}

    def extra_members(self) -> list[str]:
        """The extra members (pg4, pg5) running now."""
        running = self.running_services()
        return [n for n in EXTRA_NODES if n in running]

    def scrape_members(self, members: Sequence[str] | None = None) -> None:
        """Prometheus scrapes the extra members (pg4, pg5) named, by default those that run;
        one that left is no longer expected up."""
        write_member_targets(
            self.lab.rendered_dir, self.extra_members() if members is None else members
        )

    def container(self, service: str) -> Container:
        """The container of a service, as it is now."""
        for container in self.containers():
            if container.service == service:
                return container
        raise HarnessError(f"{service} has no container", "is the lab up? `make status`")

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
        issued = self.lab.tls.ensure()
        if issued:
            self.say(f"issued lab TLS into {self.lab.tls.directory}: {', '.join(issued)}")
        self.lab.tls.check()
        self.check_volume_secrets()
        write_rendered(preset, self.lab.rendered_dir, self.lab.compose_settings(), restore)
        self.scrape_members()

    def check_volume_secrets(self) -> None:
        """Existing data must have been initialised with the secrets in .env."""
        current = secrets_fingerprint(self.lab.settings)
        foreign = [
            v.name
            for v in self.volumes()
            if v.labels.get(SECRETS_LABEL, "unknown") not in ("unknown", current)
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
        ours = {port for c in self.containers() if c.running for port in c.host_ports}
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
        self.compose(profiles).build(services, on_line)

    def check_monitoring(self) -> None:
        """The rendered prometheus.yml and its rule file, read by the monitoring image's own
        promtool before anything starts: a rule that does not parse is named with its file and
        line, instead of a Prometheus that never comes up and a readiness timeout; so is a
        rule reading a metric no target exports, which would never fire."""
        hint = (
            "the rules and scrape jobs come from harness/config/monitoring.py: fix them "
            "there; nothing was started"
        )
        blind = blind_rules(str(self.lab.rendered_dir / RULES_FILE))
        if blind:
            raise ConfigError("\n".join(blind), hint)
        try:
            self.runtime.run_once(
                MONITORING_IMAGE,
                # its refusals go to stderr, which the engine does not hand back: merged
                ["-c", f"exec promtool check config {PROMETHEUS_DIR}/prometheus.yml 2>&1"],
                entrypoint="sh",
                mounts=((self.lab.rendered_dir.resolve(), PROMETHEUS_DIR),),
            )
        except CommandError as exc:
            raise ConfigError(
                promtool_refusal(exc.stderr, PROMETHEUS_DIR, self.lab.rendered_dir), hint
            ) from None

    def start(self) -> None:
        self.compose().up()

    def wait_ready(self, timeout: float, on_round: OnRound | None = None) -> float:
        with self.patroni() as patroni:
            return wait_for(
                ready_checks(self.lab, patroni), timeout, on_round=on_round, log_tail=self.log_tail
            )

    def apply_preset(self, preset: TimingPreset) -> dict[str, object]:
        """Bring Patroni's live timings to the preset and the live parameters in (bootstrap
        applies the dynamic configuration only once; archive_mode, the preloaded libraries and
        shared_buffers then wait for a restart)."""
        wanted = preset.dcs_settings()
        with self.patroni() as patroni:
            live = patroni.config()
            changes: dict[str, object] = {k: v for k, v in wanted.items() if live.get(k) != v}
            parameters = live.get("postgresql", {}).get("parameters", {})
            missing = {k: v for k, v in lab_live_parameters().items() if parameters.get(k) != v}
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
        their services start afterwards (harness.provision)."""
        report = UpReport()
        with report.phase("engine"):
            ensure_engine()
        with report.phase("prepare"):
            self.prepare(preset, restore)
            self.check_ports(profiles)
        with report.phase("build"):
            self.build(on_build_line)
            self.check_monitoring()
        with report.phase("start"):
            self.start()
        with report.phase("ready"):
            self.wait_ready(timeout, on_round)
        with report.phase("preset"):
            report.preset_changes = self.apply_preset(preset)
            patched = report.preset_changes.get("postgresql")
            waits = isinstance(patched, dict) and bool(
                RESTART_PARAMETERS & set(patched["parameters"])
            )
            # Patroni notices a patched setting in its next loop: give it two before looking.
            report.restarted = self.restart_pending(2.0 * preset.loop_wait + 3 if waits else 0)
            if report.restarted:
                self.wait_ready(timeout, on_round)
        return report

    def restart_pending(self, settle: float = 0) -> list[str]:
        """Restart the members whose settings wait for it (archive_mode on a cluster made
        before archiving existed, a new shared_buffers): replicas first, the leader last.
        `settle`: how long to wait for every member to report a restart pending."""
        urls = dict(zip(NODES, self.lab.rest_urls(), strict=True))
        with self.patroni() as patroni:
            pending = poll(
                lambda: [m for m in patroni.cluster().members if m.pending_restart],
                lambda found: len(found) == len(NODES),
                timeout=settle,
            ).value
            ordered = sorted(pending, key=lambda m: m.is_leader)
            for member in ordered:
                patroni.restart(urls[member.name])
        return [m.name for m in ordered]

    # -- down ----------------------------------------------------------------------------

    def down(self, volumes: bool = False) -> dict[str, list[str]]:
        """Stop gracefully and remove everything the project made; return what was removed."""
        found = self.resources()
        containers = self.containers()
        self.runtime.act("unpause", [c.name for c in containers if c.paused])
        for tier in stop_order(c for c in containers if c.running):
            self.runtime.act("stop", [c.name for c in tier], timeout=STOP_TIMEOUT)
        self.runtime.remove(
            containers=[c.name for c in containers],
            networks=found["networks"],
            volumes=found["volumes"] if volumes else (),
        )
        if not volumes:
            found["volumes"] = []
        return found

    def remove_volumes(self, services: Iterable[str]) -> list[str]:
        """Delete the named volumes of these services (the stack must be down)."""
        names = {f"{self.lab.project}_{service}" for service in services}
        doomed = [v.name for v in self.volumes() if v.name in names]
        self.runtime.remove(volumes=doomed)
        return doomed

    # -- observation ---------------------------------------------------------------------

    def status(self) -> StackStatus:
        containers = {c.service: c.status for c in self.containers()}
        cluster, error = None, ""
        try:
            with self.patroni() as patroni:
                cluster = patroni.cluster()
        except HarnessError as exc:
            error = exc.message
        try:
            backends = fetch_backends(self.lab.url("stats", "/;csv"))
        except (httpx.HTTPError, ValueError):  # a down HAProxy is a status, not an error
            backends = []
        alerts, targets, monitoring_error = [], [], ""
        try:
            alertmanager = AlertmanagerClient(self.lab.url("alertmanager"), timeout=2)
            prometheus = PrometheusClient(self.lab.url("prometheus"), timeout=2)
            alerts, targets = alertmanager.firing(), prometheus.targets()
        except HarnessError as exc:  # monitoring down is a status too
            monitoring_error = exc.message
        return StackStatus(containers, cluster, error, backends, alerts, targets, monitoring_error)

    def execute(self, service: str, command: Sequence[str], user: str = "root") -> str:
        """A command in a service's container; its stdout, stripped."""
        return self.runtime.execute(self.container(service).name, command, user).strip()

    def logs_since(self, service: str, since: datetime) -> str:
        """What a service's container logged from a moment on."""
        return self.runtime.logs_since(self.container(service).name, since)

    def node_sql(self, node: str, query: str) -> str:
        """A query on one node over its local socket: answers even while its network is cut."""
        return self.execute(
            node, ["psql", "-X", "-U", "postgres", "-d", "postgres", "-Atc", query], "postgres"
        )

    def any_node(self) -> str:
        """A running database node, for work any of them can do."""
        running = sorted(self.running_services() & set(NODES))
        if not running:
            raise HarnessError("no database node is running", "`make dev-up` starts the lab")
        return running[0]

    def leader(self) -> str:
        with self.patroni() as patroni:
            leader = patroni.cluster().leader
        if leader is None:
            raise HarnessError("the cluster has no leader", "`make status` shows the cluster")
        return leader.name

    def reload_tls(self) -> list[str]:
        """Make every running service read its certificate again, without a restart: a
        PostgreSQL reload (sessions stay), Patroni's SIGHUP (its REST API's certificate),
        PgBouncer's SIGHUP (its RELOAD). Returns them."""
        running = self.running_services()
        reloaded = []
        for service in TLS_NAMES:
            if service not in running:
                continue
            name = self.container(service).name
            if service in (*MEMBERS, SOURCE_SERVICE):
                self.runtime.execute(name, ["pg_ctl", "reload", "-s", "-D", DATA_DIR], "postgres")
            if service in (*MEMBERS, "pgbouncer", APP_ENDPOINT):
                # dumb-init, PID 1, passes the signal on to Patroni or PgBouncer
                self.runtime.execute(name, ["sh", "-c", "kill -HUP 1"])
            reloaded.append(service)
        return reloaded

    def psql_command(
        self, endpoint: EndpointName, args: Sequence[str]
    ) -> tuple[list[str], dict[str, str]]:
        """The cluster's own psql, in a running node, on an endpoint of the network: the
        command line and the environment that carries the password (never the line)."""
        target = ENDPOINTS[endpoint]
        psql = ["psql", "-h", target.service, "-p", str(target.port), "-U", "postgres", "postgres"]
        container = self.container(self.any_node()).name
        env = {
            "PGPASSWORD": self.lab.secret("POSTGRES_PASSWORD"),
            "PGSSLMODE": "verify-full",
            "PGSSLROOTCERT": LAB_PATHS.ca_file,
        }
        command = self.runtime.exec_line(container, [*psql, *args], list(env))
        return command, env

    def log_tail(self, lines: int = 15) -> str:
        try:
            return self.compose().logs(tail=str(lines))
        except HarnessError as exc:
            return f"(logs unavailable: {exc.message.splitlines()[-1]})"
