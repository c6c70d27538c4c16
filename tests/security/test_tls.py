"""Connections that must not get in on any published PostgreSQL endpoint: one in plaintext, one
that offers TLS 1.2 at most, and one that trusts another CA (verify-full must fail). Each
endpoint first admits the same connection done right, so a refusal is TLS's and not a dead
port."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import psycopg
import pytest
from cryptography.hazmat.primitives.serialization import Encoding

from harness.clients.addresses import PLAINTEXT_REFUSED, conninfo
from harness.lab.project import LOOPBACK
from harness.lab.tls import make_ca
from harness.stack.lifecycle import Stack
from tests.security.conftest import SQL_ENDPOINTS

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.timeout(120)]
VERIFY_FAILED = "certificate verify failed|signature failure"


def connect(stack: Stack, endpoint: str, **tls: str) -> None:
    """crm_app's login with libpq's TLS settings `tls` (sslmode, sslrootcert...)."""
    dsn = conninfo(
        LOOPBACK, stack.lab.ports[endpoint], "crm_app", stack.lab.secret("CRM_APP_PASSWORD")
    )
    extra = " ".join(f"{key}={value}" for key, value in tls.items())
    with psycopg.connect(f"{dsn} {extra}", autocommit=True) as conn:
        conn.execute("select 1")


def verified(stack: Stack) -> dict[str, str]:
    return {"sslmode": "verify-full", "sslrootcert": str(stack.lab.tls.ca_file)}


@pytest.mark.parametrize("endpoint", SQL_ENDPOINTS)
def test_a_plaintext_connection_is_refused(stack: Stack, endpoint: str) -> None:
    connect(stack, endpoint, **verified(stack))
    with pytest.raises(psycopg.OperationalError, match="|".join(PLAINTEXT_REFUSED)):
        connect(stack, endpoint, sslmode="disable")


@pytest.mark.parametrize("endpoint", SQL_ENDPOINTS)
def test_a_client_that_offers_tls_12_at_most_is_refused(stack: Stack, endpoint: str) -> None:
    connect(stack, endpoint, **verified(stack), ssl_max_protocol_version="TLSv1.3")
    with pytest.raises(psycopg.OperationalError, match="protocol version"):
        connect(stack, endpoint, **verified(stack), ssl_max_protocol_version="TLSv1.2")


@pytest.fixture(scope="module")
def foreign_ca(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA that issued nothing in the lab: what an impostor's clients or servers trust."""
    cert, _ = make_ca(dt.datetime.now(dt.UTC))
    path = tmp_path_factory.mktemp("foreign") / "ca.crt"
    path.write_bytes(cert.public_bytes(Encoding.PEM))
    return path


@pytest.mark.parametrize("endpoint", SQL_ENDPOINTS)
def test_a_client_trusting_another_ca_fails_verify_full(
    stack: Stack, endpoint: str, foreign_ca: Path
) -> None:
    connect(stack, endpoint, **verified(stack))
    # the impostor CA bears the lab CA's name: OpenSSL tries its key on the server's
    # certificate and reports the signature that does not verify
    with pytest.raises(psycopg.OperationalError, match=VERIFY_FAILED):
        connect(stack, endpoint, sslmode="verify-full", sslrootcert=str(foreign_ca))
