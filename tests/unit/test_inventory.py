"""Inventories: refused with the line and the reason; rendered for servers from the lab's own
templates, differing from the lab only where they must."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from harness.config.bundle import (
    CIPHER_PASS_FILE,
    PACKAGES,
    node_patroni_config,
    plan_bundle,
    site_of,
    tls_environment,
    write_bundle,
)
from harness.config.inventory import Inventory, InventoryError, load_inventory
from harness.config.monitoring import (
    LAB_TARGETS,
    NODE_EXPORTER,
    PGBACKREST_EXPORTER,
    PGBOUNCER_EXPORTER,
    POSTGRES_EXPORTER,
    Exporter,
    alert_rules,
)
from harness.config.render import (
    COMPOSE_SITE,
    dcs_config,
    haproxy_cfg,
    patroni_config,
    pgbackrest_conf,
    pgbouncer_ini,
)
from harness.config.sizing import LAB_NODE, NodeSize
from harness.promotion.gate import GateReport, markdown

EXAMPLE = Path(__file__).parents[2] / "docs" / "inventory.example.yml"
VERSIONS = {p: "1.0-1" for pairs in PACKAGES.values() for _, packages in pairs for p in packages}
GOOD = """\
preset: normal
network: 10.0.1.0/24
hosts:
  - {name: db1, address: 10.0.1.11, roles: [database, etcd]}
  - {name: db2, address: 10.0.1.12, roles: [database, etcd]}
  - {name: db3, address: 10.0.1.13, roles: [database, etcd]}
  - {name: lb1, address: 10.0.1.21, roles: [haproxy, pgbouncer]}
"""


RESOURCES_AT = "hosts:"  # a resources line put before the hosts lands on line 3


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "inventory.yml"
    path.write_text(text)
    return path


def example() -> Inventory:
    return load_inventory(EXAMPLE)


def test_the_example_inventory_loads() -> None:
    inventory = example()
    assert [h.name for h in inventory.with_role("database")] == ["db1", "db2", "db3"]
    assert inventory.preset.name == "normal"
    assert inventory.resources == {"max_connections": "400"}
    assert inventory.size == NodeSize(cores=8, memory_mb=16 * 1024)


def test_without_a_size_the_servers_get_the_lab_nodes_settings(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, GOOD))
    assert inventory.size == LAB_NODE
    assert site_of(inventory).parameters() == COMPOSE_SITE.parameters()


@pytest.mark.parametrize(
    ("change", "line", "says"),
    [
        (("preset: normal", "preset: turbo"), 1, "unknown preset 'turbo'"),
        (("10.0.1.12", "10.0.1.11"), 5, "db2 and db1 (line 4) share the address 10.0.1.11"),
        (
            (
                "db3, address: 10.0.1.13, roles: [database, etcd]",
                "db3, address: 10.0.1.13, roles: [database]",
            ),
            4,
            "fewer than three etcd members",
        ),
        (
            ("  - {name: lb1, address: 10.0.1.21, roles: [haproxy, pgbouncer]}\n", ""),
            4,
            "no host runs haproxy",
        ),
        (
            ("  - {name: db3, address: 10.0.1.13, roles: [database, etcd]}\n", ""),
            4,
            "2 database host(s)",
        ),
        (("name: db3", "name: db2"), 6, "host db2 is listed twice (first at line 5)"),
        (("10.0.1.21", "10.0.9.21"), 7, "lb1: 10.0.9.21 is outside 10.0.1.0/24"),
        (("[haproxy, pgbouncer]", "[haproxy, pooler]"), 7, "unknown role 'pooler'"),
        (("network: 10.0.1.0/24", "network: office"), 2, "is not a CIDR"),
        (("preset: normal", "preset: normal\ncolour: blue"), 2, "unknown key 'colour'"),
        (("hosts:", "hosts: ["), 4, "not valid YAML"),
        ((RESOURCES_AT, "resources: {cores: 8}\nhosts:"), 3, "both cores and memory"),
        ((RESOURCES_AT, "resources: {cores: 8, memory: 16G}\nhosts:"), 3, "is not a size"),
        ((RESOURCES_AT, "resources: {cores: 8, memory: 64MB}\nhosts:"), 3, "below 256MB"),
        ((RESOURCES_AT, "resources: {cores: many, memory: 8GB}\nhosts:"), 3, "whole number"),
    ],
)
def test_a_bad_inventory_is_refused_with_its_line_and_reason(
    tmp_path: Path, change: tuple[str, str], line: int, says: str
) -> None:
    path = write(tmp_path, GOOD.replace(*change))
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.message.startswith(f"{path}:{line}: "), info.value.message
    assert says in info.value.message


def differences(a: Any, b: Any, path: str = "") -> set[str]:
    """Dotted paths where two parsed configurations differ."""
    if isinstance(a, dict) and isinstance(b, dict):
        return {
            d
            for k in a.keys() | b.keys()
            for d in differences(a.get(k), b.get(k), f"{path}.{k}".lstrip("."))
        }
    return set() if a == b else {path}


def test_production_differs_from_the_lab_only_in_addresses_secrets_and_resources() -> None:
    inventory = example()
    preset = inventory.preset  # the lab renders the same preset when asked
    site = site_of(inventory)
    # What the servers' size and the explicit settings change: nothing else may differ.
    sized = {k for k, v in site.parameters().items() if COMPOSE_SITE.parameters().get(k) != v}
    assert {"shared_buffers", "work_mem", "max_parallel_workers_per_gather"} <= sized
    lab = patroni_config(preset)
    prod = node_patroni_config(inventory, inventory.host("db1"))
    assert differences(lab, prod) == {
        "name",
        "restapi.connect_address",
        "postgresql.connect_address",
        "etcd3.hosts",
        "postgresql.pg_hba",
        *(f"bootstrap.dcs.postgresql.parameters.{k}" for k in sized),
    }
    assert differences(dcs_config(preset), dcs_config(preset, site)) == {
        f"postgresql.parameters.{k}" for k in sized
    }
    lab_hap, prod_hap = haproxy_cfg(preset).splitlines(), haproxy_cfg(preset, site).splitlines()
    changed = set(lab_hap) ^ set(prod_hap)
    resolution = (
        "server ",
        "resolve",
        "hold ",
        "nameserver",
        "Docker",
        "follow containers",
        "timeout retry",
    )  # the lab's Docker resolver, and the backends' addresses
    assert all(any(word in line for word in resolution) for line in changed), changed
    assert set(pgbouncer_ini().splitlines()) ^ set(pgbouncer_ini(site).splitlines()) == {
        "* = host=haproxy port=5000",
        "* = host=10.0.1.21 port=5000",
    }
    repo = set(pgbackrest_conf().splitlines()) ^ set(pgbackrest_conf(site).splitlines())
    assert all(line.startswith("repo1-") for line in repo)


def test_the_bundle_has_each_hosts_files_pinned_packages_and_no_secret(tmp_path: Path) -> None:
    bundles = plan_bundle(example(), VERSIONS)
    by_name = {b.host.name: b for b in bundles}
    assert "etc/patroni/patroni.yml" in by_name["db1"].files
    assert "etc/default/etcd" in by_name["db1"].files
    assert "etc/haproxy/haproxy.cfg" in by_name["lb1"].files
    assert "postgresql-17=1.0-1" in by_name["db1"].packages
    assert "etc/pgbackrest/conf.d/s3.conf" in by_name["db1"].templates
    assert by_name["mon1"].services == ["prometheus", "prometheus-alertmanager"]
    assert by_name["mon1"].files["etc/prometheus/alerts.yml"] == alert_rules()  # the lab's rules
    scraped = yaml.safe_load(by_name["mon1"].files["etc/prometheus/prometheus.yml"])
    targets = {c["job_name"]: c["static_configs"][0]["targets"] for c in scraped["scrape_configs"]}
    assert targets["patroni"] == ["10.0.1.11:8008", "10.0.1.12:8008", "10.0.1.13:8008"]
    assert targets["haproxy"] == ["10.0.1.21:8405"]
    written = write_bundle(bundles, tmp_path / "bundle")
    for path in written:
        text = path.read_text()
        if path.suffix == ".j2":  # secrets only as Ansible variables, filled at deploy time
            assert all(
                "{{" in line
                for line in text.splitlines()
                if "PASSWORD=" in line or line.startswith('"')
            ), path
        else:
            assert "PASSWORD=" not in text and '"postgres" "' not in text, path
    config = yaml.safe_load((tmp_path / "bundle" / "db2" / "etc/patroni/patroni.yml").read_text())
    assert config["name"] == "db2" and config["postgresql"]["connect_address"] == "10.0.1.12:5432"


@pytest.mark.skipif(
    shutil.which("ansible-playbook") is None
    and not (Path(__file__).parents[2] / ".venv/bin/ansible-playbook").exists(),
    reason="ansible-core is a dev dependency",
)
def test_the_playbook_passes_ansibles_syntax_check(tmp_path: Path) -> None:
    write_bundle(plan_bundle(example(), VERSIONS), tmp_path)
    binary = shutil.which("ansible-playbook") or str(
        Path(__file__).parents[2] / ".venv/bin/ansible-playbook"
    )
    done = subprocess.run(
        [
            binary,
            "-i",
            str(tmp_path / "inventory.yml"),
            str(tmp_path / "playbook.yml"),
            "--syntax-check",
        ],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_endpoints_default_to_the_hosts_and_standard_ports() -> None:
    endpoints = example().endpoints
    assert (endpoints.rw, endpoints.ro, endpoints.pooler) == (
        "10.0.1.21:5000",
        "10.0.1.21:5001",
        "10.0.1.21:6432",
    )
    assert endpoints.patroni == ("10.0.1.11:8008", "10.0.1.12:8008", "10.0.1.13:8008")


def test_a_bad_endpoint_is_refused_with_its_line(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD + "endpoints:\n  rw: somewhere\n")
    with pytest.raises(InventoryError, match=r":9: endpoint rw: 'somewhere' is not host:port"):
        load_inventory(path)


def test_a_gate_with_a_failed_check_is_no_go_and_skipped_checks_do_not_count() -> None:
    report = GateReport("t.yml")
    report.add("one leader", True, "pg1")
    report.add("a recent backup", None, "not configured")
    assert report.passed
    report.add("a synchronous standby", False, "none")
    assert not report.passed
    assert "| a synchronous standby | FAIL | none |" in markdown(report)
    assert markdown(report).startswith("# Cutover gate: NO-GO")


BACKUP_HOST = "  - {name: bk1, address: 10.0.1.31, roles: [backup]}\n"


def test_whichever_host_holds_the_repository_encrypts_it_as_the_lab_does(tmp_path: Path) -> None:
    cipher = "repo1-cipher-type=aes-256-cbc"
    assert cipher in pgbackrest_conf().splitlines()  # the lab's
    inventory = load_inventory(write(tmp_path, GOOD + BACKUP_HOST))
    with_host = {b.host.name: b for b in plan_bundle(inventory, VERSIONS)}
    assert with_host["bk1"].services == ["gardenlab-pgbackrest"]
    assert cipher in with_host["bk1"].files["etc/pgbackrest/pgbackrest.conf"].splitlines()
    assert cipher not in with_host["db1"].files["etc/pgbackrest/pgbackrest.conf"]
    assert CIPHER_PASS_FILE in with_host["bk1"].templates
    assert CIPHER_PASS_FILE not in with_host["db1"].templates
    path = tmp_path / "inventory.yml"
    path.write_text(GOOD)
    local = {b.host.name: b for b in plan_bundle(load_inventory(path), VERSIONS)}
    assert cipher in local["db1"].files["etc/pgbackrest/pgbackrest.conf"].splitlines()
    assert local["db1"].templates[CIPHER_PASS_FILE] == (
        "[global]\nrepo1-cipher-pass={{ pgbackrest_cipher_pass }}\n"
    )


def test_the_servers_get_the_labs_tls_settings_with_the_inventorys_paths(tmp_path: Path) -> None:
    paths = (
        "{source_dir: certs, ca_file: /srv/ca.pem, cert_file: /srv/db.pem, key_file: /srv/db.key}"
    )
    inventory = load_inventory(write(tmp_path, GOOD + f"tls: {paths}\n"))
    config = node_patroni_config(inventory, inventory.host("db1"))["postgresql"]
    assert config["parameters"]["ssl_cert_file"] == "/srv/db.pem"
    assert config["parameters"]["ssl_min_protocol_version"] == "TLSv1.3"
    assert "PATRONI_REPLICATION_SSLROOTCERT=/srv/ca.pem\n" in tls_environment(inventory)
    ini = pgbouncer_ini(site_of(inventory))
    assert "client_tls_key_file = /srv/db.key" in ini and "server_tls_ca_file = /srv/ca.pem" in ini
    assert inventory.client_ca_file is None


def test_an_inventory_without_tls_renders_none_and_a_relative_path_is_refused(
    tmp_path: Path,
) -> None:
    plain = load_inventory(write(tmp_path, GOOD))
    assert "ssl" not in node_patroni_config(plain, plain.host("db1"))["postgresql"]["parameters"]
    bad = (
        "tls: {source_dir: certs, ca_file: ca.pem, cert_file: /srv/db.pem, key_file: /srv/db.key}\n"
    )
    with pytest.raises(InventoryError, match=r"inventory.yml:8: tls: ca_file 'ca.pem' is not"):
        load_inventory(write(tmp_path, GOOD + bad))


S3 = "s3: {endpoint: fsn1.your-objectstorage.com, bucket: crm-backups, region: fsn1}\n"


def test_the_servers_get_the_labs_s3_repository_with_the_inventorys_bucket(tmp_path: Path) -> None:
    inventory = load_inventory(write(tmp_path, GOOD + S3))
    db1 = {b.host.name: b for b in plan_bundle(inventory, VERSIONS)}["db1"]
    conf = db1.files["etc/pgbackrest/pgbackrest.conf"].splitlines()
    lab = pgbackrest_conf().splitlines()
    for key in ("repo1-type", "repo1-path", "repo1-s3-uri-style", "repo1-storage-verify-tls"):
        same = [line for line in lab if line.startswith(f"{key}=")]
        assert same and same[0] in conf, key  # the lab's setting, as it is
    assert "repo1-cipher-type=aes-256-cbc" in conf
    assert "repo1-s3-endpoint=fsn1.your-objectstorage.com" in conf
    assert "repo1-s3-bucket=crm-backups" in conf and "repo1-s3-region=fsn1" in conf
    assert not [line for line in conf if line.startswith(("repo1-storage-host", "repo1-s3-key"))]
    assert db1.templates["etc/pgbackrest/conf.d/s3.conf"] == (
        "[global]\nrepo1-s3-key={{ pgbackrest_s3_key }}\n"
        "repo1-s3-key-secret={{ pgbackrest_s3_key_secret }}\n"
    )


@pytest.mark.parametrize(
    ("s3", "says"),
    [
        ("s3: {endpoint: fsn1.example.com, region: fsn1}", "s3: 'bucket' is missing"),
        ("s3: {bucket: b, region: fsn1}", "s3: 'endpoint' is missing"),
        ("s3: {endpoint: e.example.com, bucket: b}", "s3: 'region' is missing"),
        ("s3: {endpoint: 'https://e.example.com', bucket: b, region: r}", "must be a host name"),
        ("s3: {endpoint: e.example.com, bucket: b, region: r, ca_file: ca.pem}", "not an absolute"),
        ("s3: {endpoint: e.example.com, bucket: b, region: r, key: k}", "unknown key 'key' in s3"),
    ],
)
def test_a_bad_s3_section_is_refused_in_one_line_naming_the_key(
    tmp_path: Path, s3: str, says: str
) -> None:
    path = write(tmp_path, GOOD + s3 + "\n")
    with pytest.raises(InventoryError) as info:
        load_inventory(path)
    assert info.value.message.startswith(f"{path}:8: ") and says in info.value.message
    assert "\n" not in info.value.message


def test_a_bucket_and_a_backup_host_together_are_refused(tmp_path: Path) -> None:
    with pytest.raises(InventoryError, match="s3 and a backup host"):
        load_inventory(write(tmp_path, GOOD + BACKUP_HOST + S3))


def test_the_database_and_balancer_hosts_run_the_labs_exporters_and_are_scraped() -> None:
    by_name = {b.host.name: b for b in plan_bundle(example(), VERSIONS)}
    db1, lb1 = by_name["db1"], by_name["lb1"]
    assert {"prometheus-postgres-exporter", "prometheus-node-exporter"} <= set(db1.services)
    assert {"prometheus-pgbouncer-exporter", "prometheus-node-exporter"} <= set(lb1.services)
    assert lb1.services.count("prometheus-node-exporter") == 1  # two roles, one exporter
    assert "prometheus-postgres-exporter=1.0-1" in db1.packages
    postgres = db1.templates["etc/default/prometheus-postgres-exporter"]
    assert "DATA_SOURCE_NAME='postgresql://postgres:{{ postgres_password }}@10.0.1.11:5432/" in (
        postgres
    )
    assert "ARGS='--web.listen-address=:9187 --collector.stat_checkpointer'" in postgres
    pooler = lb1.templates["etc/default/prometheus-pgbouncer-exporter"]
    assert "@10.0.1.21:6432/pgbouncer?" in pooler and "{{ postgres_password }}" in pooler
    assert "textfile.directory=" in db1.files["etc/default/prometheus-node-exporter"]
    scraped = yaml.safe_load(by_name["mon1"].files["etc/prometheus/prometheus.yml"])
    targets = {c["job_name"]: c["static_configs"][0]["targets"] for c in scraped["scrape_configs"]}
    assert targets["postgres"] == ["10.0.1.11:9187", "10.0.1.12:9187", "10.0.1.13:9187"]
    assert targets["pgbouncer"] == ["10.0.1.21:9127"]
    assert "10.0.1.21:9100" in targets["node"] and "10.0.1.11:9100" in targets["node"]
    assert targets["pgbackrest"] == ["10.0.1.11:9854", "10.0.1.12:9854", "10.0.1.13:9854"]
    assert "prometheus-pgbackrest-exporter" in db1.services
    assert db1.files["etc/default/prometheus-pgbackrest-exporter"].endswith(
        "ARGS='--web.listen-address=:9854 --collect.interval=30'\n"
    )  # pgBackRest's own configuration path: the repository's, secrets in conf.d
    # the jobs the lab's Prometheus has, so every rule reads the same series in both
    assert set(targets) >= {job for job, _ in LAB_TARGETS.jobs}


@pytest.mark.parametrize(
    "exporter", [POSTGRES_EXPORTER, PGBOUNCER_EXPORTER, PGBACKREST_EXPORTER, NODE_EXPORTER]
)
def test_the_lab_runs_each_exporter_as_the_bundle_does(exporter: Exporter) -> None:
    compose = (Path(__file__).parents[2] / "compose" / "docker-compose.yml").read_text()
    assert " ".join(exporter.command()) in compose.replace('", "', " ").replace("\n", " ")
