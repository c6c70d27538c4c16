"""Logins that must fail on every published PostgreSQL endpoint: a wrong password, a user that
does not exist, and PgBouncer's admin console for a role that is not its admin. Each endpoint
first admits the right login, so a refusal means authentication and not a dead port."""

from __future__ import annotations

import secrets

import psycopg
import pytest

from harness.clients.addresses import conninfo
from harness.lab.project import LOOPBACK
from harness.stack.lifecycle import Stack
from tests.security.conftest import SQL_ENDPOINTS

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.timeout(120)]
REFUSED = r"password authentication failed|SASL authentication failed|no such user"
POOLERS = tuple(name for name in SQL_ENDPOINTS if name.endswith("pooler"))


def login(stack: Stack, endpoint: str, role: str, password: str, dbname: str = "postgres") -> None:
    dsn = conninfo(
        LOOPBACK,
        stack.lab.ports[endpoint],
        role,
        password,
        dbname,
        sslrootcert=str(stack.lab.tls.ca_file),
    )
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("select 1")


def test_the_suite_covers_each_published_endpoint() -> None:
    assert set(SQL_ENDPOINTS) == {
        "rw",
        "ro",
        "pooler",
        "proxied-rw",
        "proxied-ro",
        "proxied-pooler",
    }


@pytest.mark.parametrize("endpoint", SQL_ENDPOINTS)
def test_a_wrong_password_is_refused(stack: Stack, endpoint: str) -> None:
    login(stack, endpoint, "crm_app", stack.lab.secret("CRM_APP_PASSWORD"))
    with pytest.raises(psycopg.OperationalError, match=REFUSED):
        login(stack, endpoint, "crm_app", secrets.token_urlsafe(16))
    with pytest.raises(psycopg.OperationalError, match=REFUSED):
        login(stack, endpoint, "postgres", stack.lab.secret("CRM_APP_PASSWORD"))


@pytest.mark.parametrize("endpoint", SQL_ENDPOINTS)
def test_a_user_that_does_not_exist_is_refused(stack: Stack, endpoint: str) -> None:
    with pytest.raises(psycopg.OperationalError, match=REFUSED):
        login(stack, endpoint, "intruder", stack.lab.secret("CRM_APP_PASSWORD"))


@pytest.mark.parametrize("endpoint", POOLERS)
def test_pgbouncers_admin_console_refuses_a_role_that_is_not_its_admin(
    stack: Stack, endpoint: str
) -> None:
    with psycopg.connect(stack.lab.dsn(endpoint, "pgbouncer"), autocommit=True) as admin:
        assert admin.execute("show pools").fetchall()  # the console is there, for its admin
    with pytest.raises(psycopg.OperationalError, match="not allowed"):
        login(stack, endpoint, "crm_app", stack.lab.secret("CRM_APP_PASSWORD"), "pgbouncer")
