"""Rehearse the deployment: the rendered bundle, applied by Ansible to three bare Debian 13
containers standing in for the servers, brought up under systemd as the servers would run
it, with TLS on every link from certificates the playbook places, then checked with the
gate's read-only checks (verify-full against the rehearsal's CA, plaintext refused).

The containers run systemd as init and sshd; Ansible reaches them over SSH with a key made
for the rehearsal, on a network of their own. They are removed afterwards, whatever
happened, unless kept for a look.
"""

from __future__ import annotations

import os
import secrets
import shutil
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import yaml

from harness.clients.docker import ContainerRuntime, DockerRuntime, RunSpec
from harness.clients.patroni import PatroniClient, verifying
from harness.config.bundle import (
    certificate_names,
    lab_package_versions,
    plan_bundle,
    targets_of,
    write_bundle,
)
from harness.config.inventory import Inventory, load_inventory
from harness.config.monitoring import scrape_tls
from harness.core.errors import CommandError, HarnessError
from harness.core.process import run
from harness.core.progress import Say
from harness.lab.project import Lab
from harness.lab.tls import CA_CERT, CERT, KEY, write_server_certificates
from harness.promotion.gate import GateReport, read_only_checks, rest_url
from harness.stack.engine import BASE_IMAGE
from harness.stack.readiness import PatroniTopology, wait_for

IMAGE = "gardenlab/server:trixie"
SUBNET = "10.99.1.0/24"
SERVERS = {"db1": "10.99.1.11", "db2": "10.99.1.12", "db3": "10.99.1.13"}
LABEL = "org.gardenlab.rehearsal"
PLAYBOOK_TIMEOUT = 1200.0
READY_TIMEOUT = 240.0
SERVER_TLS = "/etc/gardenlab/tls"  # where the servers keep the certificates, as production's


def journal_hint() -> str:
    """What a readiness timeout shows instead of container logs: where the logs are."""
    return "see `journalctl -u gardenlab-patroni` in the servers"


def inventory_text(tls_dir: Path) -> str:
    """Three servers; the first also balances and pools, as a small deployment would. TLS as
    production runs it: the certificates in `tls_dir`, placed by the playbook."""
    roles = {"db1": "[etcd, database, haproxy, pgbouncer]"}
    hosts = "\n".join(
        f"  - {{name: {name}, address: {address}, roles: {roles.get(name, '[etcd, database]')}}}"
        for name, address in SERVERS.items()
    )
    tls = (
        f"tls: {{source_dir: {tls_dir}, ca_file: {SERVER_TLS}/{CA_CERT}, "
        f"cert_file: {SERVER_TLS}/{CERT}, key_file: {SERVER_TLS}/{KEY}, "
        f"client_ca_file: {tls_dir / CA_CERT}}}"
    )
    return f"preset: fast\nnetwork: {SUBNET}\nhosts:\n{hosts}\n{tls}\n"


def scrape_checks(report: GateReport, inventory: Inventory) -> bool:
    """Every target the monitoring host would scrape answers /metrics as Prometheus asks for
    it (HTTPS against the CA where the bundle renders it): the exporters the playbook set up
    run, with the configuration it gave them."""
    targets = targets_of(inventory)
    failed, asked = [], 0
    for job, addresses in targets.jobs:
        scheme = scrape_tls(job, targets.https_ca).get("scheme", "http")
        for address in addresses:
            asked += 1
            try:
                answer = httpx.get(
                    f"{scheme}://{address}/metrics",
                    timeout=5,
                    verify=verifying(inventory.client_ca_file) if scheme == "https" else False,
                )
                if answer.status_code != 200:
                    failed.append(f"{job} {address}: HTTP {answer.status_code}")
            except httpx.HTTPError as exc:
                failed.append(f"{job} {address}: {exc}")
    detail = "; ".join(failed) or f"{asked} targets of {len(targets.jobs)} jobs"
    return report.add("every scrape target answers /metrics", not failed, detail)


@dataclass
class RehearsalReport:
    seconds: dict[str, float] = field(default_factory=dict)
    checks: GateReport | None = None

    @property
    def passed(self) -> bool:
        return self.checks is not None and self.checks.passed


@contextmanager
def servers(lab: Lab, runtime: ContainerRuntime, say: Say) -> Iterator[Path]:
    """The containers, reachable over SSH as root; yields the private key. Always removed."""
    name = f"{lab.project}-rehearsal"
    labels = {LABEL: name}
    with tempfile.TemporaryDirectory(prefix="gardenlab-rehearsal-") as tmp:
        key = Path(tmp) / "id_ed25519"
        run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f", str(key)])
        try:
            runtime.create_network(name, SUBNET, labels)
            for host, address in SERVERS.items():
                server = f"{name}-{host}"
                runtime.run_detached(
                    RunSpec(
                        IMAGE,
                        server,
                        hostname=host,
                        network=name,
                        ip=address,
                        labels=labels,
                        cap_add=("SYS_ADMIN",),
                        tmpfs=("/run", "/run/lock"),
                        volumes=(("/sys/fs/cgroup", "/sys/fs/cgroup", "ro"),),
                    )
                )
                runtime.copy_to(Path(f"{key}.pub"), server, "/root/.ssh/authorized_keys")
                runtime.execute(server, ["chown", "root:root", "/root/.ssh/authorized_keys"])
            say(f"rehearsal: {len(SERVERS)} bare Debian 13 servers on {SUBNET}")
            yield key
        finally:
            teardown(runtime, name)


def teardown(runtime: ContainerRuntime, name: str) -> None:
    label = f"{LABEL}={name}"
    runtime.remove(
        containers=[c.name for c in runtime.containers(label)], networks=runtime.networks(label)
    )


def rehearse(
    lab: Lab, say: Say = print, runtime: ContainerRuntime | None = None
) -> RehearsalReport:
    runtime = runtime or DockerRuntime()
    report = RehearsalReport()
    started = time.monotonic()
    if shutil.which("ssh") is None:
        raise HarnessError("Ansible needs the ssh client", "apt-get install openssh-client")
    runtime.build_image(lab.compose_dir / "images" / "server", IMAGE, {"BASE_IMAGE": BASE_IMAGE})
    report.seconds["image"] = time.monotonic() - started
    with tempfile.TemporaryDirectory(prefix="gardenlab-bundle-") as tmp:
        path, tls_dir = Path(tmp) / "inventory.yml", Path(tmp) / "tls"
        path.write_text(inventory_text(tls_dir))
        inventory = load_inventory(path)
        write_server_certificates(
            tls_dir, {h.name: certificate_names(inventory, h) for h in inventory.hosts}
        )
        versions = lab_package_versions({r for h in inventory.hosts for r in h.roles}, runtime)
        bundle = Path(tmp) / "bundle"
        write_bundle(plan_bundle(inventory, versions), bundle)
        secret_values = {
            k: secrets.token_urlsafe(24)
            for k in (
                "postgres_password",
                "replication_password",
                "patroni_restapi_password",
                "crm_app_password",
                "pgbackrest_cipher_pass",
            )
        }
        (Path(tmp) / "secrets.yml").write_text(yaml.safe_dump(secret_values))
        with servers(lab, runtime, say) as key:
            step = time.monotonic()
            say("rehearsal: ansible-playbook (packages, files, systemd services)")
            try:
                run(
                    [
                        str(Path(sys.executable).parent / "ansible-playbook"),
                        "-i",
                        str(bundle / "inventory.yml"),
                        str(bundle / "playbook.yml"),
                        "-u",
                        "root",
                        "--private-key",
                        str(key),
                        "--extra-vars",
                        f"@{Path(tmp) / 'secrets.yml'}",
                    ],
                    timeout=PLAYBOOK_TIMEOUT,
                    env={
                        **os.environ,
                        "ANSIBLE_HOST_KEY_CHECKING": "False",
                        "ANSIBLE_SSH_ARGS": "-o UserKnownHostsFile=/dev/null "
                        "-o StrictHostKeyChecking=no -o ControlMaster=no",
                        "ANSIBLE_FORKS": "3",
                    },
                )
            except CommandError as exc:
                raise HarnessError(f"the playbook failed: {exc.message}") from exc
            report.seconds["playbook"] = time.monotonic() - step
            step = time.monotonic()
            urls = [rest_url(inventory, e) for e in inventory.endpoints.patroni]
            with PatroniClient(urls, timeout=2, ca_file=inventory.client_ca_file) as patroni:
                wait_for([PatroniTopology(patroni)], READY_TIMEOUT, log_tail=journal_hint)
                report.seconds["cluster ready"] = time.monotonic() - step
                report.checks = GateReport(str(path))
                creds = {
                    "POSTGRES_PASSWORD": secret_values["postgres_password"],
                    "CRM_APP_PASSWORD": secret_values["crm_app_password"],
                }
                read_only_checks(
                    report.checks,
                    inventory,
                    creds,
                    patroni,
                    max_lag=1024 * 1024,
                    max_backup_age=None,
                )
                scrape_checks(report.checks, inventory)
    report.seconds["total"] = time.monotonic() - started
    return report
