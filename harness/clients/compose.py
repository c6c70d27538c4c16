"""Docker Compose for one project: build, start, resolve the configuration, read logs.

Compose brings the stack up; everything that inspects or tears down goes by labels through
the ContainerRuntime instead, so it works from any state."""

from __future__ import annotations

from collections import deque
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, Protocol

from harness.clients.docker import docker_errors


class ComposeProject(Protocol):
    def build(self, services: Sequence[str], on_line: Callable[[str], None]) -> None: ...

    def up(self, services: Sequence[str] = (), *, dependencies: bool = True) -> None: ...

    def config(self) -> dict[str, Any]: ...

    def logs(self, services: Sequence[str] = (), tail: str = "100") -> str: ...

    def follow(self, services: Sequence[str], tail: str) -> Iterator[bytes]: ...


class DockerCompose:
    """ComposeProject through python-on-whales and the Compose v2 plugin."""

    def __init__(
        self,
        files: Sequence[Path],
        env_files: Sequence[Path],
        project: str,
        directory: Path,
        profiles: Sequence[str] = (),
    ) -> None:
        from python_on_whales import DockerClient

        self.client = DockerClient(
            compose_files=list(files),
            compose_env_files=[p for p in env_files if p.exists()],
            compose_project_name=project,
            compose_project_directory=directory,
            compose_profiles=list(profiles),
        )

    def build(self, services: Sequence[str], on_line: Callable[[str], None]) -> None:
        """Build images, streaming each line; a failure keeps the last lines as its evidence."""
        tail: deque[str] = deque(maxlen=40)
        with docker_errors(
            "an apt-get step failing usually means the Debian mirror is unreachable",
            evidence=lambda: "\n".join(tail),
        ):
            for _source, raw in self.client.compose.build(list(services) or None, stream_logs=True):
                line = raw.decode(errors="replace").rstrip()
                tail.append(line)
                on_line(line)

    def up(self, services: Sequence[str] = (), *, dependencies: bool = True) -> None:
        with docker_errors("`harness down` clears a half-started stack"):
            if services:
                self.client.compose.up(
                    list(services), detach=True, dependencies=dependencies, quiet=True
                )
            else:
                self.client.compose.up(detach=True, remove_orphans=True, quiet=True)

    def config(self) -> dict[str, Any]:
        with docker_errors():
            resolved: dict[str, Any] = self.client.compose.config(return_json=True)
        return resolved

    def logs(self, services: Sequence[str] = (), tail: str = "100") -> str:
        with docker_errors():
            return str(self.client.compose.logs(list(services), tail=tail))

    def follow(self, services: Sequence[str], tail: str) -> Iterator[bytes]:
        with docker_errors():
            for _source, line in self.client.compose.logs(
                list(services), tail=tail, follow=True, stream=True
            ):
                yield line
