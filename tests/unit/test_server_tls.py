"""The servers' TLS from the operator's certificates: what the playbook copies where, with
which owner and mode, the names a certificate must carry, and the refusal before any server
is touched when one is missing."""

from __future__ import annotations

import ipaddress
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import psycopg
import pytest
import yaml
from cryptography import x509

from harness.config.bundle import (
    TLS_GROUP,
    certificate_names,
    plan_bundle,
    tls_placement,
    write_bundle,
)
from harness.config.inventory import InventoryError, load_inventory
from harness.lab.tls import issued_by, write_server_certificates
from harness.promotion import gate
from harness.promotion.gate import GateReport, plaintext_check
from tests.unit.test_inventory import EXAMPLE, GOOD, VERSIONS, write

ANSIBLE = shutil.which("ansible-playbook") or str(
    Path(__file__).parents[2] / ".venv/bin/ansible-playbook"
)
TLS = "tls: {source_dir: certs, ca_file: /t/ca.crt, cert_file: /t/s.crt, key_file: /t/s.key}\n"


def test_source_dir_and_client_ca_are_this_machines_paths_beside_the_inventory(
    tmp_path: Path,
) -> None:
    inventory = load_inventory(write(tmp_path, GOOD + TLS))
    assert inventory.tls_source == tmp_path / "certs"
    lab = load_inventory(Path(__file__).parents[2] / "docs" / "inventory.lab.yml")
    assert lab.client_ca_file == str(Path(__file__).parents[2] / "tls" / "ca.crt")
    without = TLS.replace("source_dir: certs, ", "")
    with pytest.raises(InventoryError, match=r"inventory.yml:8: tls: 'source_dir' is missing"):
        load_inventory(write(tmp_path, GOOD + without))


def test_each_host_gets_the_ca_and_the_tls_servers_their_key_readable_by_their_users() -> None:
    inventory = load_inventory(EXAMPLE)
    source = EXAMPLE.parent / "tls"
    files, readers = tls_placement(inventory, inventory.host("db1"))
    placed = [(f["src"], f["dest"], f["mode"], f["group"]) for f in files]
    assert placed == [
        (f"{source}/ca.crt", "/etc/gardenlab/tls/ca.crt", "0644", "root"),
        (f"{source}/db1/tls.crt", "/etc/gardenlab/tls/tls.crt", "0644", "root"),
        (f"{source}/db1/tls.key", "/etc/gardenlab/tls/tls.key", "0640", TLS_GROUP),
    ]
    assert readers == ["etcd", "postgres"]
    assert tls_placement(inventory, inventory.host("lb1"))[1] == ["postgres"]  # PgBouncer's
    monitoring, nobody = tls_placement(inventory, inventory.host("mon1"))
    assert [f["dest"] for f in monitoring] == ["/etc/gardenlab/tls/ca.crt"] and nobody == []
    by_name = {b.host.name: b for b in plan_bundle(inventory, VERSIONS)}
    assert by_name["db1"].tls == files


def test_the_playbook_makes_the_group_and_places_the_files_before_the_services_start(
    tmp_path: Path,
) -> None:
    write_bundle(plan_bundle(load_inventory(EXAMPLE), VERSIONS), tmp_path)
    tasks = yaml.safe_load((tmp_path / "playbook.yml").read_text())[0]["tasks"]
    names = [t["name"] for t in tasks]
    refuse = names.index("Refuse before any server is touched when one is missing")
    place = names.index("Place the operator's TLS certificates and keys")
    assert refuse == 1 and place < names.index("Run the services under systemd")
    placing = tasks[place]["ansible.builtin.copy"]
    assert (placing["owner"], placing["group"], placing["mode"]) == (
        "root",
        "{{ item.group }}",
        "{{ item.mode }}",
    )
    hosts = yaml.safe_load((tmp_path / "inventory.yml").read_text())["all"]["hosts"]
    assert hosts["db1"]["gardenlab_tls_readers"] == ["etcd", "postgres"]


def test_a_database_certificate_also_names_the_load_balancer_clients_dial() -> None:
    inventory = load_inventory(EXAMPLE)
    assert certificate_names(inventory, inventory.host("db2")) == [
        "db2",
        "10.0.1.12",
        "lb1",
        "10.0.1.21",
    ]
    assert certificate_names(inventory, inventory.host("lb1")) == ["lb1", "10.0.1.21"]


def test_the_rehearsals_certificates_are_laid_out_as_a_source_dir(tmp_path: Path) -> None:
    write_server_certificates(tmp_path, {"db1": ["db1", "10.99.1.11"]})
    ca = x509.load_pem_x509_certificate((tmp_path / "ca.crt").read_bytes())
    cert = x509.load_pem_x509_certificate((tmp_path / "db1" / "tls.crt").read_bytes())
    assert issued_by(cert, ca)
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["db1"]
    assert san.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("10.99.1.11")]
    assert (tmp_path / "db1" / "tls.key").stat().st_mode & 0o077 == 0


@pytest.mark.skipif(not Path(ANSIBLE).exists(), reason="ansible-core is a dev dependency")
def test_the_playbook_refuses_before_touching_a_server_when_a_certificate_is_missing(
    tmp_path: Path,
) -> None:
    """The preflight tasks, run for real (locally): the refusal names the missing file, and
    with every file in place they pass."""
    inventory = load_inventory(write(tmp_path, GOOD + TLS))
    write_bundle(plan_bundle(inventory, VERSIONS), tmp_path / "bundle")

    def preflight() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [
                ANSIBLE,
                "-i",
                str(tmp_path / "bundle" / "inventory.yml"),
                str(tmp_path / "bundle" / "playbook.yml"),
                "--tags",
                "preflight",
                "--connection",
                "local",
                "--extra-vars",
                f"ansible_become=false ansible_python_interpreter={sys.executable}",
            ],
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
            env={**os.environ, "ANSIBLE_GATHERING": "explicit"},  # no facts: nothing needs them
        )

    refused = preflight()
    assert refused.returncode != 0
    assert f"missing on this machine: {tmp_path}/certs/ca.crt" in refused.stdout
    names = {h.name: certificate_names(inventory, h) for h in inventory.hosts}
    write_server_certificates(tmp_path / "certs", names)
    passed = preflight()
    assert passed.returncode == 0, passed.stdout + passed.stderr


@pytest.mark.parametrize(
    ("answers", "passed"),
    [
        (["no pg_hba.conf entry ... no encryption"] * 2 + ["SSL required"], True),
        (["no encryption", None, "SSL required"], False),  # one answered in plaintext
        (["no encryption", "connection refused", "SSL required"], False),  # down is not refused
    ],
)
def test_the_gate_counts_only_a_servers_refusal_of_plaintext(
    monkeypatch: pytest.MonkeyPatch, answers: list[str | None], passed: bool
) -> None:
    inventory = load_inventory(EXAMPLE)
    replies = iter(answers)

    def one_row(conninfo: str, query: str) -> tuple[int]:
        assert "sslmode=disable" in conninfo
        reply = next(replies)
        if reply is not None:
            raise psycopg.OperationalError(reply)
        return (1,)

    monkeypatch.setattr(gate, "one_row", one_row)
    report = GateReport("target")
    assert plaintext_check(report, inventory, {}) is passed
    assert report.checks[0].name == "plaintext connections refused"


def test_the_rehearsal_asks_every_scrape_target_as_prometheus_would(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from harness.promotion import rehearse

    inventory = load_inventory(EXAMPLE)
    asked: list[str] = []

    def get(url: str, timeout: float, verify: object) -> httpx.Response:
        asked.append(url)
        assert (verify is not False) == url.startswith("https://")
        return httpx.Response(503 if url == "http://10.0.1.12:9854/metrics" else 200)

    monkeypatch.setattr(httpx, "get", get)
    monkeypatch.setattr(rehearse, "verifying", lambda ca: f"context for {ca}")
    report = GateReport("target")
    assert rehearse.scrape_checks(report, inventory) is False
    assert report.checks[0].detail == "pgbackrest 10.0.1.12:9854: HTTP 503"
    assert "https://10.0.1.11:8008/metrics" in asked and "http://10.0.1.11:9100/metrics" in asked
