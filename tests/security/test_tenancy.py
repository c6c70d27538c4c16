"""Row-level security as the application role meets it (migration 0003): with its session's
agency set (`app.agency_id`), `crm_app` reads none of another agency's rows and cannot write
into another agency. Two agencies of the suite's own, so no seed is needed."""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from dataclasses import dataclass

import psycopg
import pytest

from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.security, pytest.mark.integration, pytest.mark.timeout(120)]


@dataclass(frozen=True)
class Tenants:
    mine: int
    other: int
    other_lead: int


@pytest.fixture(scope="module")
def tenants(stack: Stack) -> Iterator[Tenants]:
    tag = secrets.token_hex(4)
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        ids = []
        for name in ("mine", "other"):
            row = conn.execute(
                "insert into agencies (name, slug) values (%s, %s) returning id",
                (f"security {name}", f"security-{name}-{tag}"),
            ).fetchone()
            assert row is not None
            ids.append(int(row[0]))
            conn.execute(
                "insert into leads (agency_id, full_name, status, source) "
                "values (%s, %s, 'new', 'web')",
                (row[0], f"lead of {name}"),
            )
        lead = conn.execute("select id from leads where agency_id = %s", (ids[1],)).fetchone()
        assert lead is not None
        yield Tenants(ids[0], ids[1], int(lead[0]))
        conn.execute("delete from agencies where id = any(%s)", (ids,))


@pytest.fixture
def app(stack: Stack, tenants: Tenants) -> Iterator[psycopg.Connection[tuple[object, ...]]]:
    """crm_app on the rw endpoint, its session set to the suite's first agency."""
    with psycopg.connect(stack.lab.dsn("rw", role="crm_app"), autocommit=True) as conn:
        conn.execute("select set_config('app.agency_id', %s, false)", (str(tenants.mine),))
        yield conn


def test_another_agencys_rows_are_not_there_for_the_app(
    app: psycopg.Connection[tuple[object, ...]], tenants: Tenants
) -> None:
    own = app.execute("select count(*) from leads where agency_id = %s", (tenants.mine,))
    assert own.fetchone() == (1,)  # the policy admits the session's own agency
    for sql in (
        "select count(*) from leads where agency_id = %s",
        "select count(*) from agencies where id = %s",
    ):
        assert app.execute(sql, (tenants.other,)).fetchone() == (0,), sql
    by_id = app.execute("select count(*) from leads where id = %s", (tenants.other_lead,))
    assert by_id.fetchone() == (0,)


def test_the_app_cannot_write_into_another_agency(
    app: psycopg.Connection[tuple[object, ...]], tenants: Tenants
) -> None:
    with pytest.raises(psycopg.errors.InsufficientPrivilege):
        app.execute(
            "insert into leads (agency_id, full_name, status, source) "
            "values (%s, 'x', 'new', 'web')",
            (tenants.other,),
        )
    with pytest.raises(psycopg.errors.InsufficientPrivilege):  # moving its own row across
        app.execute(
            "update leads set agency_id = %s where agency_id = %s", (tenants.other, tenants.mine)
        )
    for sql in (
        "update leads set full_name = 'taken' where id = %s",
        "delete from leads where id = %s",
    ):
        assert app.execute(sql, (tenants.other_lead,)).rowcount == 0, sql


def test_without_an_agency_the_app_sees_nothing(stack: Stack, tenants: Tenants) -> None:
    with psycopg.connect(stack.lab.dsn("rw", role="crm_app"), autocommit=True) as conn:
        assert conn.execute("select count(*) from leads").fetchone() == (0,)
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        row = conn.execute("select full_name from leads where id = %s", (tenants.other_lead,))
        assert row.fetchone() == ("lead of other",)  # the writes above changed nothing
