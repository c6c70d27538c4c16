"""promtool, the one checker of Prometheus rule files, on any machine: Debian 13's package,
pinned by version and checksum, fetched from Debian's archive once into a cache.

The lab's Prometheus image installs the same version (2.53.3 from trixie), so the rules are
tested by the parser that loads them. The binary is static Go and runs on Debian 12 too, so
no engine and no apt source are needed: `make test` on a fresh machine fetches 15 MB once.
"""

from __future__ import annotations

import hashlib
import io
import lzma
import os
import tarfile
from dataclasses import dataclass
from pathlib import Path

import httpx

from harness.core import process
from harness.core.errors import CommandError, ConfigError, EngineError

VERSION = "2.53.3+ds1-2"
ARCHIVE = "http://deb.debian.org/debian"
PACKAGES = {  # Debian architecture -> (pool path, sha256)
    "amd64": (
        f"pool/main/p/prometheus/promtool_{VERSION}_amd64.deb",
        "ff27654eacc95abd846d344e91fe4ba3b4f0588a50d606ed1d2f09ad3408722f",
    ),
}
MACHINE_ARCH = {"x86_64": "amd64"}


def cache_dir() -> Path:
    root = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(root) / "gardenlab" / f"promtool-{VERSION}"


def _ar_member(deb: bytes, prefix: str) -> bytes:
    """A member of a .deb (an `ar` archive) by name prefix."""
    if not deb.startswith(b"!<arch>\n"):
        raise ValueError("not an ar archive")
    at = 8
    while at + 60 <= len(deb):
        header = deb[at : at + 60]
        name = header[:16].decode().strip().rstrip("/")
        size = int(header[48:58].decode().strip())
        if name.startswith(prefix):
            return deb[at + 60 : at + 60 + size]
        at += 60 + size + (size % 2)
    raise ValueError(f"no {prefix}* member")


def extract_binary(deb: bytes, target: Path) -> None:
    """./usr/bin/promtool from the package's data.tar.xz, written to `target`."""
    data = _ar_member(deb, "data.tar")
    with tarfile.open(fileobj=io.BytesIO(lzma.decompress(data))) as tar:
        member = tar.extractfile("./usr/bin/promtool")
        if member is None:
            raise ValueError("no ./usr/bin/promtool in the package")
        partial = target.with_suffix(".partial")
        partial.write_bytes(member.read())
        partial.chmod(0o755)
        partial.replace(target)


@dataclass(frozen=True)
class Promtool:
    path: Path

    def test_rules(self, test_file: Path) -> str:
        """`promtool test rules`; a failing case raises CommandError with promtool's report."""
        return process.run([str(self.path), "test", "rules", str(test_file)], timeout=120)

    def check_rules(self, rules_file: Path) -> str:
        return self._check("rules", rules_file)

    def check_config(self, config_file: Path) -> str:
        """prometheus.yml and the rule files it names."""
        return self._check("config", config_file)

    def check_metrics(self, exposition: str) -> str:
        """Metrics in the text format, as a textfile collector reads them."""
        return process.run([str(self.path), "check", "metrics"], stdin=exposition, timeout=30)

    def _check(self, what: str, path: Path) -> str:
        try:
            return process.run([str(self.path), "check", what, str(path)], timeout=60)
        except CommandError as exc:
            raise ConfigError(
                f"{path}: does not load: {exc.stderr.strip()}",
                "fix harness/config/monitoring.py; nothing was started",
            ) from None


def ensure_promtool(transport: httpx.BaseTransport | None = None) -> Promtool:
    """The cached promtool, fetched and checked against its pinned checksum when missing."""
    arch = MACHINE_ARCH.get(os.uname().machine)
    if arch not in PACKAGES:
        raise EngineError(
            f"no pinned promtool for machine {os.uname().machine}",
            "install Debian's promtool 2.53 and add its package to harness/config/promtool.py",
        )
    binary = cache_dir() / "promtool"
    if binary.is_file():
        return Promtool(binary)
    pool_path, sha256 = PACKAGES[arch]
    url = f"{os.environ.get('GARDENLAB_DEBIAN_MIRROR', ARCHIVE)}/{pool_path}"
    try:
        with httpx.Client(transport=transport, timeout=120, follow_redirects=True) as client:
            response = client.get(url)
            response.raise_for_status()
    except httpx.HTTPError as exc:
        raise EngineError(
            f"cannot fetch promtool from {url}: {exc}",
            "check that Debian's archive is reachable (GARDENLAB_DEBIAN_MIRROR picks a mirror)",
        ) from None
    digest = hashlib.sha256(response.content).hexdigest()
    if digest != sha256:
        raise EngineError(
            f"{url} has sha256 {digest}, not the pinned {sha256}",
            "the archive changed the package: pin the new version in harness/config/promtool.py",
        )
    binary.parent.mkdir(parents=True, exist_ok=True)
    extract_binary(response.content, binary)
    return Promtool(binary)
