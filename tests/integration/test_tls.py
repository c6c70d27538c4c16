"""TLS on the real stack: what each endpoint serves, replication through the fault proxy, and
a rotation that keeps sessions and data."""

from __future__ import annotations

import socket
import ssl
import struct

import httpx
import psycopg
import pytest
from cryptography import x509

from harness.clients.patroni import verifying
from harness.lab.topology import NODES
from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

SSL_REQUEST = struct.pack("!II", 8, 80877103)


def served(port: int, ca_file: str) -> tuple[x509.Certificate, str]:
    """The certificate a PostgreSQL-protocol port presents, verified as libpq's verify-full
    does (the CA, the name 127.0.0.1), and the protocol agreed."""
    context = ssl.create_default_context(cafile=ca_file)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as raw:
        raw.sendall(SSL_REQUEST)
        assert raw.recv(1) == b"S", "the server refused TLS"
        with context.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            der = tls.getpeercert(binary_form=True)
            assert der is not None
            return x509.load_der_x509_certificate(der), str(tls.version())


def test_every_published_postgres_port_serves_tls_13_from_the_lab_ca(stack: Stack) -> None:
    ca = str(stack.lab.tls.ca_file)
    authority = x509.load_pem_x509_certificate(stack.lab.tls.ca_file.read_bytes())
    for name in ("rw", "ro", "pooler", "proxied-rw", "proxied-pooler"):
        cert, version = served(stack.lab.ports[name], ca)
        assert version == "TLSv1.3", name
        assert cert.issuer == authority.subject, name
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        row = conn.execute(
            "select ssl, version from pg_stat_ssl where pid = pg_backend_pid()"
        ).fetchone()
    assert row == (True, "TLSv1.3")


def test_patronis_rest_api_is_https_from_the_lab_ca_and_refuses_plain_http(stack: Stack) -> None:
    """HAProxy's checks and Prometheus's scrapes verify it the same way (their targets are up
    only if they do: the readiness check waits for both)."""
    ca = verifying(stack.lab.rest_ca)
    for node in NODES:
        assert httpx.get(stack.lab.rest_url(node, "/health"), verify=ca, timeout=5).is_success
        with pytest.raises(httpx.HTTPError):  # Patroni answers plain HTTP with a TLS alert
            httpx.get(stack.lab.url(node, "/health"), timeout=5)
        with pytest.raises(httpx.ConnectError, match="CERTIFICATE_VERIFY_FAILED"):
            httpx.get(stack.lab.rest_url(node, "/health"), verify=True, timeout=5)


def test_replication_through_the_fault_proxy_is_encrypted(stack: Stack) -> None:
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        rows = conn.execute(
            "select r.application_name, s.ssl, s.version from pg_stat_replication r"
            " join pg_stat_ssl s using (pid)"
        ).fetchall()
    assert len(rows) == len(NODES) - 1
    assert all(ssl_on and version == "TLSv1.3" for _, ssl_on, version in rows), rows


def test_rotation_reissues_reloads_and_keeps_sessions_and_data(stack: Stack) -> None:
    ca = str(stack.lab.tls.ca_file)
    before = {p: served(stack.lab.ports[p], ca)[0].serial_number for p in ("rw", "pooler")}
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as held:
        held.execute("create table if not exists tls_rotation (n int)")
        held.execute("insert into tls_rotation values (1)")
        stack.lab.tls.rotate()
        assert set(stack.reload_tls()) >= {*NODES, "pgbouncer"}
        after = {p: served(stack.lab.ports[p], ca)[0].serial_number for p in ("rw", "pooler")}
        assert all(after[p] != before[p] for p in before), (before, after)
        held.execute("insert into tls_rotation values (2)")  # the open session goes on
    with psycopg.connect(stack.lab.dsn("pooler"), autocommit=True) as conn:
        assert conn.execute("select count(*) from tls_rotation").fetchone() == (2,)
        conn.execute("drop table tls_rotation")
    stack.lab.tls.check()
    assert stack.status().healthy
