"""The Supabase profile on the real stack: the database contract the services rely on, and
postgres-meta, before, during and after a leader failover; the profile's compose file; and
services whose images cannot be had named rather than fatal."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import psycopg
import pytest

from harness.core.errors import HarnessError
from harness.core.polling import holds, poll
from harness.faults.controller import Faults
from harness.lab.topology import SUPABASE
from harness.stack.lifecycle import Stack
from harness.stack.supabase import SupabaseReport, profile_services, start_supabase
from tests.integration.conftest import new_leader
from tests.realstack import ready, seed_small

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]
LOGIN_ROLES = ("authenticator", "supabase_admin", "supabase_auth_admin", "supabase_storage_admin")
SCHEMAS = {"auth", "storage", "realtime", "_realtime", "extensions", "graphql_public"}


@pytest.fixture(scope="module")
def supabase(stack: Stack) -> Iterator[SupabaseReport]:
    ready(stack)
    seed_small(stack, reset=True)
    yield start_supabase(stack, say=print)


def one(dsn: str, query: str, *params: Any) -> Any:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute(query, params or None).fetchone()
    return row[0] if row else None


def agencies_seen(stack: Stack, role: str, claims: str) -> set[int]:
    """As PostgREST does it: log in as authenticator, switch role, set the JWT's claims."""
    with psycopg.connect(stack.lab.dsn("rw", role="authenticator")) as conn:
        conn.execute(f"SET LOCAL ROLE {role}")
        conn.execute("SELECT set_config('request.jwt.claims', %s, true)", (claims,))
        return {r[0] for r in conn.execute("SELECT DISTINCT agency_id FROM leads")}


def anon_cannot_read(stack: Stack) -> bool:
    try:
        agencies_seen(stack, "anon", '{"role": "anon"}')
    except psycopg.errors.InsufficientPrivilege:
        return True
    return False


def meta_query(stack: Stack, sql: str) -> list[dict[str, Any]]:
    response = httpx.post(f"{stack.lab.url('meta')}/query", json={"query": sql}, timeout=10)
    response.raise_for_status()
    rows: list[dict[str, Any]] = response.json()
    return rows


def check_meta(stack: Stack) -> None:
    base = stack.lab.url("meta")
    assert httpx.get(f"{base}/health", timeout=5).status_code == 200
    tables = httpx.get(f"{base}/tables", params={"included_schemas": "public"}, timeout=10).json()
    assert "leads" in {t["name"] for t in tables}
    assert meta_query(stack, "SELECT pg_is_in_recovery() AS standby") == [{"standby": False}]


def test_every_profile_service_started_or_named_with_its_reason(
    supabase: SupabaseReport, stack: Stack
) -> None:
    names = {s.name for s in profile_services(stack)}
    assert names == {"auth", "kong", "meta", "realtime", "rest", "storage", "studio"}
    assert "meta" in supabase.started
    assert set(supabase.started) | set(supabase.missing) == names
    for service, why in supabase.missing.items():
        assert "cannot be pulled" in why, (service, why)


def test_the_profile_is_valid_and_pinned(stack: Stack) -> None:
    config = stack.compose([SUPABASE]).config()
    images = {s.name: s.image for s in profile_services(stack)}
    assert images["auth"] == "supabase/gotrue:v2.177.0"
    assert all(":" in image and not image.endswith(":latest") for image in images.values())
    for name in images:
        environment = config["services"][name].get("environment", {})
        hosts = [v for k, v in environment.items() if "DB" in k or k == "DATABASE_URL"]
        assert all("pg1" not in v and "pg2" not in v and "pg3" not in v for v in hosts), name


def test_database_contract_holds_before_and_after_a_leader_failover(
    supabase: SupabaseReport, stack: Stack
) -> None:
    assert anon_cannot_read(stack)
    check_contract(stack)
    old = stack.leader()
    with Faults(stack).container_fault("kill", old):
        new_leader(stack, old)
    stack.wait_ready(180)
    check_contract(stack)
    assert anon_cannot_read(stack)


def check_contract(stack: Stack) -> None:
    for role in LOGIN_ROLES:
        assert one(stack.lab.dsn("rw", role=role), "SELECT current_user") == role
    tenant = agencies_seen(stack, "authenticated", '{"role": "authenticated", "agency_id": 2}')
    assert tenant == {2}, "RLS by JWT claims shows one tenant's rows only"
    assert len(agencies_seen(stack, "service_role", '{"role": "service_role"}')) > 1
    admin = stack.lab.dsn("rw")
    assert one(admin, "SELECT count(*) FROM pg_publication WHERE pubname = 'supabase_realtime'")
    assert set(one(admin, "SELECT array_agg(nspname::text) FROM pg_namespace")) >= SCHEMAS
    assert one(admin, "SHOW wal_level") == "logical"
    assert wal2json_sees_a_change(admin), "Realtime's logical decoding works on this leader"


def wal2json_sees_a_change(dsn: str) -> bool:
    """Realtime decodes changes with wal2json from a slot it creates when it connects."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("SELECT pg_create_logical_replication_slot('probe', 'wal2json', true)")
        conn.execute("CREATE TABLE IF NOT EXISTS realtime_probe (id int)")
        conn.execute("INSERT INTO realtime_probe VALUES (1)")
        changes = conn.execute(
            "SELECT data FROM pg_logical_slot_get_changes('probe', NULL, NULL)"
        ).fetchall()
    return any("realtime_probe" in row[0] for row in changes)


def test_meta_answers_before_during_and_after_a_leader_failover(
    supabase: SupabaseReport, stack: Stack
) -> None:
    check_meta(stack)
    old = stack.leader()
    answered_during, failed_during = 0, 0

    def answered_on_a_new_leader() -> bool:
        nonlocal answered_during, failed_during
        try:
            meta_query(stack, "SELECT 1 AS one")
            answered_during += 1
            return stack.leader() != old
        except (httpx.HTTPError, HarnessError):
            failed_during += 1
            return False

    with Faults(stack).container_fault("kill", old):
        poll(answered_on_a_new_leader, holds, timeout=90)
    stack.wait_ready(180)
    print(f"meta during the failover: {answered_during} answers, {failed_during} failures")
    assert answered_during > 0, "meta answered again on the new leader, through HAProxy"
    check_meta(stack)
