from __future__ import annotations

import datetime as dt
import ipaddress
import ssl
from dataclasses import replace
from pathlib import Path

import psycopg
import pytest
import yaml
from click.testing import CliRunner
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from harness import cli
from harness.cli.app import App
from harness.clients.addresses import connection_error, conninfo, sqlalchemy_url
from harness.config.bundle import node_patroni_config, site_of, targets_of
from harness.config.inventory import load_inventory
from harness.config.monitoring import LAB_TARGETS, prometheus_config
from harness.config.render import (
    COMPOSE_SITE,
    haproxy_cfg,
    patroni_config,
    patroni_tls_environment,
    pgbouncer_ini,
)
from harness.core.errors import ConfigError
from harness.core.progress import Say
from harness.lab.presets import get_preset
from harness.lab.project import Lab
from harness.lab.tls import LAB_PATHS, TLS_GID, LabTls, make_ca, subject_names
from harness.lab.topology import NODES, TLS_NAMES
from harness.promotion.gate import rest_url
from harness.stack.lifecycle import Stack

NOW = dt.datetime(2026, 12, 1, tzinfo=dt.UTC)


@pytest.fixture
def chowned(monkeypatch: pytest.MonkeyPatch) -> list[tuple[str, int, int]]:
    """Keys go to root and the TLS group; recorded instead, so the tests need not be root."""
    calls: list[tuple[str, int, int]] = []
    monkeypatch.setattr(
        "harness.lab.tls.os.chown", lambda path, uid, gid: calls.append((str(path), uid, gid))
    )
    return calls


@pytest.fixture
def lab_tls(tmp_path: Path, chowned: list[tuple[str, int, int]]) -> LabTls:
    tls = LabTls(tmp_path)
    tls.ensure(NOW)
    return tls


def cert(tls: LabTls, service: str) -> x509.Certificate:
    return x509.load_pem_x509_certificate(tls.cert_file(service).read_bytes())


def test_first_start_makes_a_ca_and_a_certificate_per_service(
    tmp_path: Path, chowned: list[tuple[str, int, int]]
) -> None:
    tls = LabTls(tmp_path)
    assert tls.ensure(NOW) == ["CA", *TLS_NAMES]
    assert (tmp_path / "tls" / "ca.crt").exists()
    assert (tmp_path / "tls" / "clients" / "ca.crt").read_bytes() == tls.ca_file.read_bytes()
    assert tls.ensure(NOW) == []  # kept, like the secrets
    tls.check(NOW)
    for service in TLS_NAMES:
        key = tls.service_dir(service) / "tls.key"
        assert key.stat().st_mode & 0o777 == 0o640
        assert (str(key.with_name(".tls.key.tmp")), 0, TLS_GID) in chowned
    assert tls.ca_key_file.stat().st_mode & 0o777 == 0o600


def test_a_node_answers_to_its_name_haproxy_the_proxy_and_the_host(lab_tls: LabTls) -> None:
    san = cert(lab_tls, "pg1").extensions.get_extension_for_class(x509.SubjectAlternativeName)
    assert set(san.value.get_values_for_type(x509.DNSName)) == {
        "pg1",
        "haproxy",
        "faultproxy",
        "localhost",
    }
    assert san.value.get_values_for_type(x509.IPAddress) == [ipaddress.ip_address("127.0.0.1")]


def test_a_strict_verifier_accepts_the_certificates(lab_tls: LabTls) -> None:
    # Python 3.13's default context is strict: it wants the issuer's key identifier
    client = ssl.create_default_context(cafile=lab_tls.ca_file)
    client.verify_flags |= ssl.VERIFY_X509_STRICT
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(lab_tls.cert_file("etcd1"), lab_tls.service_dir("etcd1") / "tls.key")
    pipes = [ssl.MemoryBIO() for _ in range(4)]
    ends = [
        client.wrap_bio(pipes[0], pipes[1], server_hostname="etcd1"),
        server.wrap_bio(pipes[2], pipes[3], server_side=True),
    ]
    done = [False, False]
    for _ in range(10):
        for i, end in enumerate(ends):
            try:
                end.do_handshake()
                done[i] = True
            except ssl.SSLWantReadError:
                pass
        pipes[2].write(pipes[1].read())  # client -> server
        pipes[0].write(pipes[3].read())  # server -> client
    assert done == [True, True]


def test_an_expired_certificate_is_named_with_the_command_that_renews_it(lab_tls: LabTls) -> None:
    with pytest.raises(ConfigError) as error:
        lab_tls.check(NOW + dt.timedelta(days=400))
    assert "tls/pg1/tls.crt expired on" in error.value.message
    assert "harness tls rotate" in error.value.hint


def test_a_missing_certificate_is_named_and_the_next_start_issues_it(lab_tls: LabTls) -> None:
    lab_tls.cert_file("pgbouncer").unlink()
    with pytest.raises(ConfigError, match=r"tls/pgbouncer/tls.crt \(or its key\) is missing"):
        lab_tls.check(NOW)
    assert lab_tls.ensure(NOW) == ["pgbouncer"]
    lab_tls.check(NOW)


def test_a_ca_that_did_not_issue_the_certificates_is_refused(lab_tls: LabTls) -> None:
    other, _ = make_ca(NOW)
    lab_tls.ca_file.write_bytes(other.public_bytes(Encoding.PEM))
    with pytest.raises(ConfigError) as error:
        lab_tls.check(NOW)
    assert "tls/pg1/tls.crt was not issued by tls/ca.crt" in error.value.message
    assert "harness tls rotate" in error.value.hint


def test_certificates_without_their_ca_are_refused_not_overwritten(lab_tls: LabTls) -> None:
    lab_tls.ca_file.unlink()
    before = lab_tls.cert_file("pg1").read_bytes()
    with pytest.raises(ConfigError, match=r"harness tls rotate` --ca"):
        lab_tls.ensure(NOW)
    assert lab_tls.cert_file("pg1").read_bytes() == before


def test_rotate_reissues_under_the_same_ca_or_a_new_one(lab_tls: LabTls) -> None:
    ca_before = lab_tls.ca_file.read_bytes()
    serials = {s: cert(lab_tls, s).serial_number for s in TLS_NAMES}
    assert lab_tls.rotate(now=NOW) == list(TLS_NAMES)
    assert lab_tls.ca_file.read_bytes() == ca_before
    assert all(cert(lab_tls, s).serial_number != serials[s] for s in TLS_NAMES)
    lab_tls.check(NOW)
    assert lab_tls.rotate(new_ca=True, now=NOW)[0] == "CA"
    assert lab_tls.ca_file.read_bytes() != ca_before
    assert (lab_tls.service_dir("pg2") / "ca.crt").read_bytes() == lab_tls.ca_file.read_bytes()
    lab_tls.check(NOW)


def test_every_lab_connection_string_verifies_the_server_against_the_ca(tmp_path: Path) -> None:
    lab = Lab(tmp_path, {"POSTGRES_PASSWORD": "pw"})
    dsn = lab.dsn("rw")
    assert "sslmode=verify-full" in dsn
    assert f"sslrootcert={tmp_path / 'tls' / 'ca.crt'}" in dsn
    assert lab.compose_settings()["GARDENLAB_TLS"] == str(tmp_path / "tls")
    url = sqlalchemy_url("127.0.0.1", 5000, "postgres", "pw", "postgres", "/x/ca.crt")
    assert url.endswith("/postgres?sslmode=verify-full&sslrootcert=%2Fx%2Fca.crt")
    assert "sslmode" not in conninfo("db1", 5432, "postgres", "pw")


def test_patroni_renders_tls_13_and_verifies_its_peers() -> None:
    config = patroni_config(get_preset("fast"))["postgresql"]
    assert config["parameters"]["ssl"] == "on"
    assert config["parameters"]["ssl_min_protocol_version"] == "TLSv1.3"
    assert config["parameters"]["ssl_cert_file"] == LAB_PATHS.cert_file
    # the peers' verification is Patroni's environment: the compose file carries the rendering's
    compose = (Path(__file__).parents[2] / "compose" / "docker-compose.yml").read_text()
    environment = patroni_tls_environment(LAB_PATHS)
    assert environment["PATRONI_REPLICATION_SSLMODE"] == "verify-full"
    for key, value in environment.items():
        assert f"  {key}: {value}\n" in compose


def test_pgbouncer_speaks_tls_to_clients_and_verifies_the_servers() -> None:
    ini = pgbouncer_ini()
    assert f"client_tls_cert_file = {LAB_PATHS.cert_file}" in ini
    assert "server_tls_sslmode = verify-full" in ini
    assert "client_tls_protocols = tlsv1.3" in ini
    assert "client_tls_sslmode = require" in ini  # a plaintext login is refused


def test_a_site_without_tls_renders_none() -> None:
    site = replace(COMPOSE_SITE, tls=None)
    config = patroni_config(get_preset("fast"), site=site)["postgresql"]
    assert "ssl" not in config["parameters"] and patroni_tls_environment(None) == {}
    assert not any(rule.startswith(("hostssl", "hostnossl")) for rule in config["pg_hba"])
    assert "tls" not in pgbouncer_ini(site)


class ReloadingStack:
    def __init__(self) -> None:
        self.reloaded = False

    def reload_tls(self) -> list[str]:
        self.reloaded = True
        return list(NODES)


def test_rotate_command_reissues_and_reloads(
    tmp_path: Path, chowned: list[tuple[str, int, int]]
) -> None:
    LabTls(tmp_path).ensure(NOW)
    stack = ReloadingStack()

    def stack_factory(lab: Lab, say: Say) -> Stack:
        return stack  # type: ignore[return-value]

    app = App(stack_factory=stack_factory, lab_factory=lambda: Lab(tmp_path, {}))
    result = CliRunner().invoke(cli.cli, ["tls", "rotate"], obj=app)
    assert result.exit_code == 0, result.output
    assert stack.reloaded and "reloaded: pg1, pg2, pg3" in result.output
    result = CliRunner().invoke(cli.cli, ["tls", "check"], obj=app)
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize(
    "refusal",
    [
        'connection failed: connection to server at "127.0.0.1", port 5000 failed: FATAL:  '
        'pg_hba.conf rejects connection for host "172.18.0.9", user "postgres", database '
        '"postgres", no encryption',
        'connection failed: connection to server at "127.0.0.1", port 6432 failed: FATAL:  '
        "SSL required",
    ],
)
def test_a_plaintext_refusal_says_tls_is_required_and_shows_the_string_to_use(
    refusal: str,
) -> None:
    error = connection_error(
        psycopg.OperationalError(refusal),
        "database",
        "is the lab up?",
        "postgresql://postgres:secret@127.0.0.1:5000/postgres?sslmode=disable",
    )
    assert "requires TLS" in error.message
    assert error.hint == (
        'connect with TLS verified against the lab CA: "user=postgres dbname=postgres '
        'host=127.0.0.1 port=5000 sslmode=verify-full sslrootcert=tls/ca.crt"'
    )
    assert "secret" not in str(error)


def test_another_connection_failure_keeps_its_own_hint() -> None:
    error = connection_error(
        psycopg.OperationalError("connection refused"), "database", "is the lab up?", "host=x"
    )
    assert error.message == "cannot reach the database: connection refused"
    assert error.hint == "is the lab up?"


def test_patronis_rest_api_serves_https_with_the_nodes_certificate() -> None:
    restapi = patroni_config(get_preset("fast"))["restapi"]
    assert restapi == {
        "listen": "0.0.0.0:8008",
        "certfile": LAB_PATHS.cert_file,
        "keyfile": LAB_PATHS.key_file,
        "cafile": LAB_PATHS.ca_file,  # Patroni verifies its peers' REST APIs with it too
    }
    lab = Lab(Path("/x"), {})
    assert lab.rest_urls()[0] == "https://127.0.0.1:8008" and lab.rest_ca == "/x/tls/ca.crt"
    for node in NODES:  # the certificate names what HAProxy, Prometheus and the host use
        assert {node, "127.0.0.1"} <= set(subject_names(node))


def test_haproxy_checks_patroni_over_https_verifying_the_ca_and_the_name() -> None:
    cfg = haproxy_cfg(get_preset("fast"))
    checks = f"check port 8008 check-ssl verify required ca-file {LAB_PATHS.ca_file}"
    assert cfg.count(checks) == 2  # rw and ro
    assert "    server pg1 pg1:5432 verifyhost pg1\n" in cfg
    plain = haproxy_cfg(get_preset("fast"), replace(COMPOSE_SITE, tls=None))
    assert "check-ssl" not in plain and "verifyhost" not in plain


def test_prometheus_scrapes_patroni_over_https_and_the_rest_as_before() -> None:
    jobs = {j["job_name"]: j for j in yaml.safe_load(prometheus_config())["scrape_configs"]}
    assert jobs["patroni"]["scheme"] == "https"
    assert jobs["patroni"]["tls_config"] == {"ca_file": LAB_PATHS.ca_file}
    assert all("scheme" not in j for name, j in jobs.items() if name != "patroni")
    plain = prometheus_config(replace(LAB_TARGETS, https_ca=None))
    assert "https" not in plain


def test_the_servers_render_the_same_https_from_the_inventorys_paths() -> None:
    inventory = load_inventory(Path(__file__).parents[2] / "docs" / "inventory.example.yml")
    assert inventory.tls is not None
    config = node_patroni_config(inventory, inventory.host("db1"))
    assert config["restapi"]["certfile"] == inventory.tls.cert_file
    balancer = haproxy_cfg(inventory.preset, site_of(inventory))
    assert f"ca-file {inventory.tls.ca_file}" in balancer
    # the name, not the address: HAProxy's verifyhost never matches an IP address SAN
    assert "    server db1 10.0.1.11:5432 verifyhost db1\n" in balancer
    scrape = yaml.safe_load(prometheus_config(targets_of(inventory)))["scrape_configs"][0]
    assert scrape["scheme"] == "https" and scrape["tls_config"]["ca_file"] == inventory.tls.ca_file
    assert rest_url(inventory, "10.0.1.11:8008") == "https://10.0.1.11:8008"
    assert rest_url(replace(inventory, tls=None), "10.0.1.11:8008") == "http://10.0.1.11:8008"
