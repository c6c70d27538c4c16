"""Where a secret or a port could get out, read from the engine and the files themselves, not
from the configuration that meant to prevent it: published ports on loopback only; no .env
secret in image layers or image environment, in container logs, in rendered files (the lab's
and `harness render`'s bundle) or in any file git tracks; container environments carry only
the passwords named below, which are there by design."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.clients.docker import DockerRuntime, Exposure
from harness.lab.project import LOOPBACK
from harness.lab.secrets import read_env_file
from harness.stack.lifecycle import Stack
from tests.security.conftest import CORE_PROFILE_PORTS, lab_secrets, leaked

ROOT = Path(__file__).parents[2]
RENDER = (sys.executable, "-m", "harness", "render")
# Containers whose environment carries secrets because the software reads them only from
# its environment (Patroni's PATRONI_*, pgBackRest's PGBACKREST_* with the S3 repository's
# key, libpq's PGPASSWORD, the exporters' DSNs, PgBouncer's entrypoint writing its auth file,
# the S3 server's start script registering the key). Anyone who may run
# `docker inspect` sees them; on servers they are root-only files (patroni.env, userlist.txt).
ENV_SECRETS = {
    "pg1": {
        "POSTGRES_PASSWORD",
        "REPLICATION_PASSWORD",
        "PATRONI_RESTAPI_PASSWORD",
        "PGBACKREST_CIPHER_PASS",
        "S3_ACCESS_KEY",
        "S3_SECRET_KEY",
    },
    "pgbouncer": {"POSTGRES_PASSWORD", "CRM_APP_PASSWORD"},
    "csv-import": {"CRM_APP_PASSWORD"},
    "pg1-exporter": {"POSTGRES_PASSWORD"},
    "pgbouncer-exporter": {"POSTGRES_PASSWORD"},
    "pgbackrest-exporter": {"PGBACKREST_CIPHER_PASS", "S3_ACCESS_KEY", "S3_SECRET_KEY"},
    "s3": {"S3_ACCESS_KEY", "S3_SECRET_KEY"},
}
ENV_SECRETS |= {n: ENV_SECRETS["pg1"] for n in ("pg2", "pg3")}
ENV_SECRETS |= {f"{n}-exporter": ENV_SECRETS["pg1-exporter"] for n in ("pg2", "pg3")}


@pytest.fixture(scope="module")
def exposures(stack: Stack) -> Iterator[dict[str, Exposure]]:
    runtime = DockerRuntime()
    yield {c.service: runtime.exposure(c.name) for c in stack.containers() if c.running}


@pytest.mark.security
@pytest.mark.integration
def test_every_published_port_is_bound_to_loopback_only(
    stack: Stack, exposures: dict[str, Exposure]
) -> None:
    bindings = [(s, b) for s, e in exposures.items() for b in e.bindings]
    published = {b.host_port for _, b in bindings}
    expected = {port for name, port in stack.lab.ports.items() if name in CORE_PROFILE_PORTS}
    assert expected <= published, f"not published: {sorted(expected - published)}"
    wide = [f"{s} {b.host_ip or '*'}:{b.host_port}" for s, b in bindings if b.host_ip != LOOPBACK]
    assert not wide, f"published beyond loopback: {wide}"


@pytest.mark.security
@pytest.mark.integration
def test_no_secret_in_image_layers_or_image_environment(
    stack: Stack, exposures: dict[str, Exposure]
) -> None:
    secrets = lab_secrets(stack.lab)
    images = {e.image: e for e in exposures.values()}
    assert len(images) >= 6  # etcd, postgres, haproxy, pgbouncer, fault proxy, monitoring...
    found = {
        image: names
        for image, e in images.items()
        if (names := leaked("\n".join((*e.image_history, *e.image_env)), secrets))
    }
    assert not found, found


@pytest.mark.security
@pytest.mark.integration
def test_no_secret_in_container_logs(stack: Stack, exposures: dict[str, Exposure]) -> None:
    secrets = lab_secrets(stack.lab)
    assert any(e.logs for e in exposures.values())
    found = {s: names for s, e in exposures.items() if (names := leaked(e.logs, secrets))}
    assert not found, found


@pytest.mark.security
@pytest.mark.integration
def test_container_environments_hold_only_the_secrets_they_must(
    stack: Stack, exposures: dict[str, Exposure]
) -> None:
    secrets = lab_secrets(stack.lab)
    found = {s: set(leaked("\n".join(e.env), secrets)) for s, e in exposures.items()}
    beyond = {s: names - ENV_SECRETS.get(s, set()) for s, names in found.items()}
    assert not {s: n for s, n in beyond.items() if n}, beyond
    assert found["pg1"] == ENV_SECRETS["pg1"]  # the check sees what is there


@pytest.mark.security
@pytest.mark.integration
def test_no_secret_in_the_rendered_files_or_the_bundle(
    stack: Stack, test_env: dict[str, str], tmp_path: Path
) -> None:
    secrets = lab_secrets(stack.lab)
    bundle = tmp_path / "bundle"
    done = subprocess.run(
        [
            *RENDER,
            "--inventory",
            str(ROOT / "docs" / "inventory.example.yml"),
            "--out",
            str(bundle),
        ],
        env=test_env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    files = [p for d in (bundle, stack.lab.rendered_dir) for p in d.rglob("*") if p.is_file()]
    assert len(files) > 20
    found = {str(p): names for p in files if (names := leaked(p.read_text(), secrets))}
    # rendered.env holds settings and hashes; a secret there would reach Compose's config
    assert not found, found
    assert not leaked(done.stdout + done.stderr, secrets)


@pytest.mark.security
def test_no_secret_in_any_file_git_tracks() -> None:
    secrets = {
        k: v for k, v in read_env_file(ROOT / ".env").items() if k.isupper() and len(v) >= 16
    }
    if not secrets:
        pytest.skip("no .env yet: the lab generates its secrets at first start")
    tracked = (
        subprocess.run(
            ["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True, timeout=30
        )
        .stdout.decode()
        .split("\0")
    )
    assert ".env" not in tracked
    found = {}
    for name in filter(None, tracked):
        path = ROOT / name
        text = path.read_bytes().decode(errors="replace") if path.is_file() else ""
        if names := leaked(text, secrets):
            found[name] = names
    assert not found, found
