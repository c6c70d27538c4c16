"""The container runtime behind one small interface, and the one place Docker's errors are
translated.

`ContainerRuntime` is what the stack, the faults and the rehearsal need of Docker;
`DockerRuntime` serves it with python-on-whales, and tests serve it with a fake. Every
Docker failure leaves here as a CommandError carrying the command, exit code and stderr,
or as ContainerGone when the container is not there."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Literal, Protocol

from harness.core.errors import CommandError, ContainerGone

SERVICE_LABEL = "com.docker.compose.service"
PROJECT_LABEL = "com.docker.compose.project"
LIST_ATTEMPTS = 3
# Compose puts the project's labels on the images it builds too, so a container that was
# `docker run` from one would pass for the service; only Compose's own containers carry this.
COMPOSE_CONTAINER_LABEL = "com.docker.compose.container-number"
LIST_IDS = ("container", "ls", "--all", "--quiet", "--no-trunc")
IMAGE_HISTORY = ("image", "history", "--no-trunc", "--format", "{{.CreatedBy}}")
GONE_MARKERS = ("No such container", "No such object", "is not running")


@dataclass(frozen=True)
class Container:
    """A container as it is at the moment it was listed."""

    name: str
    id: str
    service: str  # its Compose service, or its name outside Compose
    status: str  # running, paused, exited, created, restarting, dead
    running: bool  # Docker's own flag: true for a paused container too
    paused: bool
    addresses: tuple[str, ...] = ()  # one per network it is attached to
    host_ports: frozenset[int] = frozenset()  # ports it publishes on the host

    @property
    def serving(self) -> bool:
        """Running and not frozen."""
        return self.running and not self.paused


@dataclass(frozen=True)
class Volume:
    name: str
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Binding:
    """A published port as the engine holds it, not as the configuration asked for it."""

    host_ip: str  # "" or 0.0.0.0: every interface
    host_port: int
    container_port: str  # 5000/tcp


@dataclass(frozen=True)
class Exposure:
    """What anyone who may ask the engine learns of a container: its published ports, its
    environment, its image's configuration and build history, its logs."""

    container: str
    bindings: tuple[Binding, ...]
    env: tuple[str, ...]  # KEY=VALUE
    image: str
    image_env: tuple[str, ...]
    image_history: tuple[str, ...]  # each layer's command line, build arguments included
    logs: str


ContainerAction = Literal["kill", "stop", "pause", "unpause", "start", "restart"]


@dataclass(frozen=True)
class RunSpec:
    """A detached container outside Compose (the rehearsal's bare servers)."""

    image: str
    name: str
    hostname: str
    network: str
    ip: str
    labels: Mapping[str, str]
    cap_add: tuple[str, ...] = ()
    tmpfs: tuple[str, ...] = ()
    volumes: tuple[tuple[str, str, str], ...] = ()  # (host path, container path, mode)


class ContainerRuntime(Protocol):
    """What the harness asks of a container engine; `label` filters are `key=value` (or a
    bare key, which a container must carry); containers match every label given."""

    def containers(self, *labels: str) -> list[Container]: ...

    def networks(self, label: str) -> list[str]: ...

    def volumes(self, label: str) -> list[Volume]: ...

    def act(self, action: ContainerAction, names: Sequence[str], timeout: int = 30) -> None: ...

    def remove(
        self,
        *,
        containers: Sequence[str] = (),
        networks: Sequence[str] = (),
        volumes: Sequence[str] = (),
        images: Sequence[str] = (),
    ) -> None: ...

    def execute(self, container: str, command: Sequence[str], user: str = "root") -> str: ...

    def image_exists(self, image: str) -> bool: ...

    def pull(self, image: str) -> None: ...

    def run_once(
        self,
        image: str,
        command: Sequence[str],
        entrypoint: str,
        mounts: Sequence[tuple[Path, str]] = (),
    ) -> str:
        """A throwaway container's output; `mounts`: (host directory, path inside), read-only."""
        ...

    def build_image(self, context: Path, tag: str, build_args: Mapping[str, str]) -> None: ...

    def run_detached(self, spec: RunSpec) -> None: ...

    def create_network(self, name: str, subnet: str, labels: Mapping[str, str]) -> None: ...

    def copy_to(self, source: Path, container: str, destination: str) -> None: ...

    def memory_used(self, names: Sequence[str]) -> dict[str, int]: ...

    def exposure(self, container: str, log_lines: int = 2000) -> Exposure: ...

    def logs_since(self, container: str, since: datetime) -> str:
        """What the container wrote (stdout and stderr) from a moment on."""
        ...

    def exec_line(self, container: str, command: Sequence[str], env: Sequence[str]) -> list[str]:
        """The command line that runs `command` interactively in the container, passing the
        named variables from this environment: for handing the terminal over (psql)."""
        ...


def container_from_inspect(c: dict[str, Any]) -> Container:
    """A Container from one entry of `docker container inspect`'s JSON."""
    state = c.get("State") or {}
    settings = c.get("NetworkSettings") or {}
    networks = settings.get("Networks") or {}
    ports = settings.get("Ports") or {}
    name = str(c["Name"]).lstrip("/")
    return Container(
        name=name,
        id=str(c["Id"]),
        service=((c.get("Config") or {}).get("Labels") or {}).get(SERVICE_LABEL, name),
        status=str(state.get("Status") or "unknown"),
        running=bool(state.get("Running")),
        paused=bool(state.get("Paused")),
        addresses=tuple(n["IPAddress"] for n in networks.values() if n.get("IPAddress")),
        host_ports=frozenset(
            int(b["HostPort"]) for bindings in ports.values() for b in bindings or []
        ),
    )


@contextmanager
def docker_errors(hint: str = "", evidence: Callable[[], str] | None = None) -> Iterator[None]:
    """Turn python-on-whales' exception into ours, keeping the command, exit code and stderr
    (or, for streamed commands whose output went elsewhere, the `evidence` they kept)."""
    from python_on_whales.exceptions import DockerException

    try:
        yield
    except DockerException as exc:
        stderr = evidence() if evidence else exc.stderr or exc.stdout or ""
        kind = ContainerGone if any(m in stderr for m in GONE_MARKERS) else CommandError
        raise kind(exc.docker_command, exc.return_code, stderr, hint) from exc


class DockerRuntime:
    """ContainerRuntime on the local Docker engine, through python-on-whales."""

    def __init__(self) -> None:
        from python_on_whales import DockerClient

        self.docker = DockerClient()

    def containers(self, *labels: str) -> list[Container]:
        """One `docker ps` and one `docker container inspect` of them all, read as JSON:
        python-on-whales' objects inspect a container again on every attribute read. A
        container removed between the two calls makes the listing start over."""
        for _ in range(LIST_ATTEMPTS - 1):
            with suppress(ContainerGone):
                return self._list_containers(labels)
        return self._list_containers(labels)

    def _list_containers(self, labels: Sequence[str]) -> list[Container]:
        from python_on_whales.utils import run as whales

        with docker_errors():
            filters = [arg for label in labels for arg in ("--filter", f"label={label}")]
            ids = str(whales([*self.docker.docker_cmd, *LIST_IDS, *filters])).split()
            if not ids:
                return []
            found = json.loads(str(whales([*self.docker.docker_cmd, "container", "inspect", *ids])))
        return [container_from_inspect(c) for c in found]

    def networks(self, label: str) -> list[str]:
        with docker_errors():
            return [n.name for n in self.docker.network.list(filters=[("label", label)])]

    def volumes(self, label: str) -> list[Volume]:
        with docker_errors():
            found = self.docker.volume.list(filters=[("label", label)])
        return [Volume(v.name, dict(v.labels or {})) for v in found]

    def act(self, action: ContainerAction, names: Sequence[str], timeout: int = 30) -> None:
        if not names:
            return
        container = self.docker.container
        with docker_errors():
            if action == "kill":
                container.kill(list(names))
            elif action == "stop":
                container.stop(list(names), time=timeout)
            elif action == "pause":
                container.pause(list(names))
            elif action == "unpause":
                container.unpause(list(names))
            elif action == "start":
                container.start(list(names))
            else:
                container.restart(list(names))

    def remove(
        self,
        *,
        containers: Sequence[str] = (),
        networks: Sequence[str] = (),
        volumes: Sequence[str] = (),
        images: Sequence[str] = (),
    ) -> None:
        with docker_errors():
            if containers:
                self.docker.container.remove(list(containers), force=True)
            if networks:
                self.docker.network.remove(list(networks))
            if volumes:
                self.docker.volume.remove(list(volumes))
            if images:
                self.docker.image.remove(list(images), force=True, prune=True)

    def execute(self, container: str, command: Sequence[str], user: str = "root") -> str:
        with docker_errors():
            result = self.docker.container.execute(container, list(command), user=user, tty=False)
        return str(result or "")

    def image_exists(self, image: str) -> bool:
        with docker_errors():
            return bool(self.docker.image.exists(image))

    def pull(self, image: str) -> None:
        with docker_errors():
            self.docker.image.pull(image, quiet=True)

    def run_once(
        self,
        image: str,
        command: Sequence[str],
        entrypoint: str,
        mounts: Sequence[tuple[Path, str]] = (),
    ) -> str:
        with docker_errors():
            output = self.docker.container.run(
                image,
                list(command),
                entrypoint=entrypoint,
                remove=True,
                volumes=[(str(host), inside, "ro") for host, inside in mounts],
            )
        return str(output or "")

    def build_image(self, context: Path, tag: str, build_args: Mapping[str, str]) -> None:
        with docker_errors(
            "an apt-get step failing usually means the Debian mirror is unreachable"
        ):
            self.docker.image.legacy_build(context, tags=[tag], build_args=dict(build_args))

    def run_detached(self, spec: RunSpec) -> None:
        with docker_errors():
            self.docker.container.run(
                spec.image,
                detach=True,
                name=spec.name,
                hostname=spec.hostname,
                networks=[spec.network],
                ip=spec.ip,
                labels=dict(spec.labels),
                cap_add=list(spec.cap_add),
                tmpfs=list(spec.tmpfs),
                volumes=list(spec.volumes),
            )

    def create_network(self, name: str, subnet: str, labels: Mapping[str, str]) -> None:
        with docker_errors():
            self.docker.network.create(name, subnet=subnet, labels=dict(labels))

    def copy_to(self, source: Path, container: str, destination: str) -> None:
        with docker_errors():
            self.docker.container.copy(source, (container, destination))

    def memory_used(self, names: Sequence[str]) -> dict[str, int]:
        with docker_errors():
            stats = self.docker.stats(list(names)) if names else []
        return {s.container_name: int(s.memory_used) for s in stats}

    def logs_since(self, container: str, since: datetime) -> str:
        with docker_errors():
            return str(self.docker.container.logs(container, since=since))

    def exposure(self, container: str, log_lines: int = 2000) -> Exposure:
        from python_on_whales.utils import run as whales

        with docker_errors():
            found = self.docker.container.inspect(container)
            image = self.docker.image.inspect(found.image)
            history = whales([*self.docker.docker_cmd, *IMAGE_HISTORY, found.image])
            logs = self.docker.container.logs(container, tail=log_lines)
        ports = found.network_settings.ports or {}
        return Exposure(
            container=found.name,
            bindings=tuple(
                Binding(b.get("HostIp", ""), int(b["HostPort"]), inside)
                for inside, bindings in ports.items()
                for b in bindings or []
            ),
            env=tuple(found.config.env or ()),
            image=found.config.image or found.image,
            image_env=tuple(image.config.env or ()),
            image_history=tuple(str(history or "").splitlines()),
            logs=str(logs),
        )

    def exec_line(self, container: str, command: Sequence[str], env: Sequence[str]) -> list[str]:
        tty = ["-t"] if sys.stdin.isatty() and sys.stdout.isatty() else []
        passed = [arg for name in env for arg in ("-e", name)]
        return ["docker", "exec", "-i", *tty, *passed, container, *command]
