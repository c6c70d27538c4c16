"""The Supabase services' own tables, used the way the services use them. storage-api (as
supabase_storage_admin) and GoTrue (as supabase_auth_admin) create their tables after the lab's
migrations ran, so the API roles and dashboard_user reach them only through the default
privileges upstream's database image sets for those owners (migration 0006); without them the
reads and writes below that upstream allows fail with 42501 "permission denied".

Tables are created as the services' first migrations create them (storage-api
migrations/tenant/0002-storage-schema.sql with the RLS of its add-rls-to-buckets and
add-migrations-rls; GoTrue migrations/00_init_auth_schema.up.sql and
20220224000811_update_auth_functions.up.sql; Realtime's realtime.messages of
20240523004032_redefine_authorization_tables.ex), under names no service uses (a per-run
prefix), and dropped afterwards, so a real Storage, GoTrue or Realtime on the same stack is
unaffected. Each request logs in and sets its role and claims as the service does, and rolls
back what it wrote; checks read only what the fixtures committed, so their order is free."""

from __future__ import annotations

import json
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psycopg
import pytest
from psycopg import sql

from harness.stack.lifecycle import Stack

pytestmark = [pytest.mark.integration, pytest.mark.timeout(900)]

P = f"glprobe_{secrets.token_hex(4)}"  # no service names a table like this
BUCKETS, OBJECTS = f"storage.{P}_buckets", f"storage.{P}_objects"
MIGRATIONS, STORAGE_SEQ = f"storage.{P}_migrations", f"storage.{P}_seq"
FOLDERNAME = f"storage.{P}_foldername"
USERS, TOKENS, UID = f"auth.{P}_users", f"auth.{P}_refresh_tokens", f"auth.{P}_uid"
MESSAGES = f"realtime.{P}_messages"
ALICE, BOB = str(uuid.uuid4()), str(uuid.uuid4())
API_ROLES = ("anon", "authenticated", "service_role")
# PostgREST logs in as authenticator, storage-api as supabase_storage_admin; both switch to the
# request's role (0005 makes the API roles members of both).
LOGINS = ("authenticator", "supabase_storage_admin")
MIGRATION = next((Path(__file__).parents[2] / "migrations").glob("0006_*.sql"), None)
RLS_REFUSED = "row-level security"
DENIED = "permission denied"

# Storage's tables as storage-api creates them when it is not told to install the roles (the
# profile leaves storage.install_roles off): without a grant of its own. Storage's own tables key
# on text and uuid; the sequence stands for any that it, or a later version, adds.
STORAGE_TABLES = f"""
CREATE TABLE {MIGRATIONS} (
    id integer PRIMARY KEY,
    name varchar(100) UNIQUE NOT NULL,
    hash varchar(40) NOT NULL,
    executed_at timestamp DEFAULT current_timestamp
);
CREATE TABLE {BUCKETS} (
    id text NOT NULL PRIMARY KEY,
    name text NOT NULL,
    owner uuid,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    public boolean DEFAULT false
);
CREATE UNIQUE INDEX {P}_bname ON {BUCKETS} (name);
CREATE TABLE {OBJECTS} (
    id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    bucket_id text REFERENCES {BUCKETS} (id),
    name text,
    owner uuid,
    created_at timestamptz DEFAULT now(),
    updated_at timestamptz DEFAULT now(),
    last_accessed_at timestamptz DEFAULT now(),
    metadata jsonb
);
CREATE UNIQUE INDEX {P}_bucketid_objname ON {OBJECTS} (bucket_id, name);
ALTER TABLE {OBJECTS} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {BUCKETS} ENABLE ROW LEVEL SECURITY;
ALTER TABLE {MIGRATIONS} ENABLE ROW LEVEL SECURITY;
CREATE FUNCTION {FOLDERNAME}(name text) RETURNS text[] LANGUAGE plpgsql AS $$
DECLARE
    _parts text[];
BEGIN
    select string_to_array(name, '/') into _parts;
    return _parts[1:array_length(_parts,1)-1];
END
$$;
CREATE SEQUENCE {STORAGE_SEQ};
INSERT INTO {MIGRATIONS} (id, name, hash) VALUES (0, 'create-migrations-table', 'e18db593');
INSERT INTO {BUCKETS} (id, name, public) VALUES ('public', 'public', true),
    ('private', 'private', false);
INSERT INTO {OBJECTS} (bucket_id, name, owner) VALUES
    ('public', 'public/readme.txt', NULL),
    ('private', '{ALICE}/a.png', '{ALICE}'),
    ('private', '{BOB}/b.png', '{BOB}');
"""
# The policies of Supabase's Storage guide, written as the project's administrator writes them
# (Studio, through postgres-meta, as supabase_admin): public buckets and their files readable by
# anyone, users read their own files and upload only into a folder named after themselves.
STORAGE_POLICIES = f"""
CREATE POLICY {P}_public_buckets ON {BUCKETS} FOR SELECT TO anon, authenticated USING (public);
CREATE POLICY {P}_public_read ON {OBJECTS} FOR SELECT TO anon, authenticated
    USING (bucket_id = 'public');
CREATE POLICY {P}_own_read ON {OBJECTS} FOR SELECT TO authenticated
    USING (owner = {UID}());
CREATE POLICY {P}_own_folder_upload ON {OBJECTS} FOR INSERT TO authenticated
    WITH CHECK (
        bucket_id = 'private' AND owner = {UID}()
        AND ({FOLDERNAME}(name))[1] = {UID}()::text
    );
"""
# auth.users and auth.refresh_tokens as GoTrue's first migration creates them, and auth.uid() as
# GoTrue defines it since 20220224000811_update_auth_functions.
AUTH_OBJECTS = f"""
CREATE FUNCTION {UID}() RETURNS uuid LANGUAGE sql STABLE AS $$
    select coalesce(
        nullif(current_setting('request.jwt.claim.sub', true), ''),
        (nullif(current_setting('request.jwt.claims', true), '')::jsonb ->> 'sub')
    )::uuid
$$;
CREATE TABLE {USERS} (
    instance_id uuid NULL,
    id uuid NOT NULL UNIQUE,
    aud varchar(255) NULL,
    "role" varchar(255) NULL,
    email varchar(255) NULL UNIQUE,
    encrypted_password varchar(255) NULL,
    confirmed_at timestamptz NULL,
    invited_at timestamptz NULL,
    confirmation_token varchar(255) NULL,
    confirmation_sent_at timestamptz NULL,
    recovery_token varchar(255) NULL,
    recovery_sent_at timestamptz NULL,
    email_change_token varchar(255) NULL,
    email_change varchar(255) NULL,
    email_change_sent_at timestamptz NULL,
    last_sign_in_at timestamptz NULL,
    raw_app_meta_data jsonb NULL,
    raw_user_meta_data jsonb NULL,
    is_super_admin bool NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    CONSTRAINT {P}_users_pkey PRIMARY KEY (id)
);
CREATE TABLE {TOKENS} (
    instance_id uuid NULL,
    id bigserial NOT NULL,
    "token" varchar(255) NULL,
    user_id varchar(255) NULL,
    revoked bool NULL,
    created_at timestamptz NULL,
    updated_at timestamptz NULL,
    CONSTRAINT {P}_refresh_tokens_pkey PRIMARY KEY (id)
);
INSERT INTO {USERS} (id, aud, role, email)
    VALUES ('{ALICE}', 'authenticated', 'authenticated', 'alice@example.org');
"""
# realtime.messages as Realtime creates and grants it (it logs in as supabase_admin), with a
# policy of Realtime's Authorization guide: signed-in users may use the private room "room-1".
# realtime.topic() is current_setting('realtime.topic'), which Realtime sets per request.
REALTIME_OBJECTS = f"""
CREATE TABLE {MESSAGES} (
    id uuid NOT NULL DEFAULT gen_random_uuid() PRIMARY KEY,
    topic text NOT NULL,
    extension text NOT NULL,
    payload jsonb,
    event text,
    private boolean DEFAULT false,
    inserted_at timestamp NOT NULL DEFAULT now()
);
ALTER TABLE {MESSAGES} ENABLE ROW LEVEL SECURITY;
GRANT SELECT, INSERT, UPDATE ON {MESSAGES} TO anon, authenticated, service_role;
CREATE POLICY {P}_room_read ON {MESSAGES} FOR SELECT TO authenticated
    USING (topic = current_setting('realtime.topic', true) AND topic = 'room-1');
CREATE POLICY {P}_room_write ON {MESSAGES} FOR INSERT TO authenticated
    WITH CHECK (topic = current_setting('realtime.topic', true) AND topic = 'room-1');
INSERT INTO {MESSAGES} (topic, extension) VALUES ('room-1', 'broadcast'), ('room-2', 'broadcast');
"""


def run(stack: Stack, login: str, statements: str) -> None:
    with psycopg.connect(stack.lab.dsn("rw", role=login), autocommit=True) as conn:
        conn.execute(statements)


@pytest.fixture(scope="module")
def auth_objects(stack: Stack) -> Iterator[None]:
    run(stack, "supabase_auth_admin", AUTH_OBJECTS)
    yield
    run(stack, "supabase_auth_admin", f"DROP TABLE {USERS}, {TOKENS}; DROP FUNCTION {UID}()")


@pytest.fixture(scope="module")
def storage_objects(stack: Stack, auth_objects: None) -> Iterator[None]:
    run(stack, "supabase_storage_admin", STORAGE_TABLES)
    run(stack, "supabase_admin", STORAGE_POLICIES)
    yield
    run(
        stack,
        "supabase_storage_admin",
        f"DROP TABLE {OBJECTS}, {BUCKETS}, {MIGRATIONS}; DROP SEQUENCE {STORAGE_SEQ}; "
        f"DROP FUNCTION {FOLDERNAME}(text)",
    )


@pytest.fixture(scope="module")
def realtime_objects(stack: Stack) -> Iterator[None]:
    run(stack, "supabase_admin", REALTIME_OBJECTS)
    yield
    run(stack, "supabase_admin", f"DROP TABLE {MESSAGES}")


def request_settings(login: str, role: str, sub: str | None, topic: str | None) -> dict[str, str]:
    """What the service behind the login sets for a request, the role by set_config('role'), which
    is SET LOCAL ROLE: PostgREST v12 the role and request.jwt.claims; storage-api the legacy
    request.jwt.claim.* too (setScope in its src/internal/database/connection.ts); Realtime the
    topic (set_conn_config in its lib/realtime/tenants/authorization.ex)."""
    claims = {"role": role} | ({"sub": sub} if sub else {})
    settings = {"role": role, "request.jwt.claims": json.dumps(claims)}
    if login == "supabase_storage_admin":
        settings |= {"request.jwt.claim.role": role, "request.jwt.claim.sub": sub or ""}
    if topic is not None:
        settings["realtime.topic"] = topic
    return settings


@contextmanager
def request(
    stack: Stack,
    role: str,
    login: str = "authenticator",
    sub: str | None = None,
    topic: str | None = None,
) -> Iterator[psycopg.Connection[Any]]:
    """One request as the services make it: log in, switch to the request's role and set its
    claims for one transaction, which is rolled back whatever it wrote."""
    settings = request_settings(login, role, sub, topic)
    calls = sql.SQL(", ").join(
        sql.SQL("set_config({}, {}, true)").format(sql.Literal(k), sql.Literal(v))
        for k, v in settings.items()
    )
    with psycopg.connect(stack.lab.dsn("rw", role=login)) as conn:
        conn.execute(sql.SQL("SELECT {}").format(calls))
        try:
            yield conn
        finally:
            conn.rollback()


@contextmanager
def as_dashboard_user(stack: Stack) -> Iterator[psycopg.Connection[Any]]:
    """dashboard_user logs in nowhere: the platform's administrator switches to it."""
    with psycopg.connect(stack.lab.dsn("rw", role="supabase_admin")) as conn:
        conn.execute("SET LOCAL ROLE dashboard_user")
        try:
            yield conn
        finally:
            conn.rollback()


def values(conn: psycopg.Connection[Any], query: str, *params: Any) -> list[Any]:
    return [row[0] for row in conn.execute(query, params or None)]


def upload(conn: psycopg.Connection[Any], name: str, owner: str | None) -> None:
    conn.execute(
        f"INSERT INTO {OBJECTS} (bucket_id, name, owner) VALUES ('private', %s, %s)",
        (name, owner),
    )


# -- storage ---------------------------------------------------------------------------------


@pytest.mark.parametrize("login", LOGINS)
def test_anon_reads_public_buckets_and_files_only(
    stack: Stack, storage_objects: None, login: str
) -> None:
    with request(stack, "anon", login) as conn:
        assert values(conn, f"SELECT name FROM {OBJECTS}") == ["public/readme.txt"]
        assert values(conn, f"SELECT id FROM {BUCKETS}") == ["public"]
        assert values(conn, f"SELECT name FROM {MIGRATIONS}") == [], "RLS hides it, no 42501"
    with (
        request(stack, "anon", login) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match=RLS_REFUSED),
    ):
        upload(conn, "anywhere/x.png", None)


@pytest.mark.parametrize("login", LOGINS)
def test_authenticated_reads_public_and_own_files_and_uploads_into_own_folder(
    stack: Stack, storage_objects: None, login: str
) -> None:
    with request(stack, "authenticated", login, sub=ALICE) as conn:
        names = values(conn, f"SELECT name FROM {OBJECTS}")
        assert sorted(names) == sorted([f"{ALICE}/a.png", "public/readme.txt"])
        upload(conn, f"{ALICE}/new.png", ALICE)
        assert f"{ALICE}/new.png" in values(conn, f"SELECT name FROM {OBJECTS}")
    with (
        request(stack, "authenticated", login, sub=ALICE) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match=RLS_REFUSED),
    ):
        upload(conn, f"{BOB}/not-mine.png", ALICE)


@pytest.mark.parametrize("login", LOGINS)
def test_service_role_bypasses_the_policies(
    stack: Stack, storage_objects: None, login: str
) -> None:
    """storage-api does its own bookkeeping as service_role: buckets, objects, migrations."""
    with request(stack, "service_role", login) as conn:
        assert len(values(conn, f"SELECT id FROM {OBJECTS}")) == 3
        assert values(conn, f"SELECT name FROM {MIGRATIONS}") == ["create-migrations-table"]
        upload(conn, f"{BOB}/by-the-server.png", BOB)
        conn.execute(f"INSERT INTO {BUCKETS} (id, name) VALUES ('new', 'new')")


@pytest.mark.parametrize("role", API_ROLES)
def test_api_roles_use_storage_sequences_and_functions(
    stack: Stack, storage_objects: None, role: str
) -> None:
    with request(stack, role) as conn:
        assert values(conn, f"SELECT nextval('{STORAGE_SEQ}') > 0") == [True]
        assert values(conn, f"SELECT {FOLDERNAME}('a/b/c.png')") == [["a", "b"]]


def test_dashboard_user_has_storage_sequences_not_its_tables(
    stack: Stack, storage_objects: None
) -> None:
    """Upstream grants dashboard_user storage's schema, sequences and routines, not its tables."""
    with as_dashboard_user(stack) as conn:
        assert values(conn, f"SELECT nextval('{STORAGE_SEQ}') > 0") == [True]
    with (
        as_dashboard_user(stack) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match=DENIED),
    ):
        conn.execute(f"SELECT count(*) FROM {OBJECTS}")


# -- auth ------------------------------------------------------------------------------------


def test_dashboard_user_reads_and_writes_what_gotrue_creates(
    stack: Stack, auth_objects: None
) -> None:
    """GoTrue's later migrations enable RLS on its tables (20240612123726), which hides their
    rows from dashboard_user as on upstream; the privileges are what is checked here."""
    with as_dashboard_user(stack) as conn:
        assert values(conn, f"SELECT email FROM {USERS} WHERE id = %s", ALICE) == [
            "alice@example.org"
        ]
        conn.execute(f"UPDATE {USERS} SET raw_app_meta_data = '{{}}' WHERE id = %s", (ALICE,))
        token = values(conn, f"INSERT INTO {TOKENS} (user_id) VALUES (%s) RETURNING id", ALICE)
        assert token[0] > 0


@pytest.mark.parametrize("role", API_ROLES)
def test_api_roles_call_auth_functions_but_never_read_auth_tables(
    stack: Stack, auth_objects: None, role: str
) -> None:
    with request(stack, role, sub=ALICE) as conn:
        assert values(conn, f"SELECT {UID}()::text") == [ALICE]
    with (
        request(stack, role, sub=ALICE) as conn,
        pytest.raises(psycopg.errors.InsufficientPrivilege, match=DENIED),
    ):
        conn.execute(f"SELECT email FROM {USERS}")


# -- realtime --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("role", "topic", "allowed"),
    [
        ("authenticated", "room-1", True),
        ("authenticated", "room-2", False),
        ("anon", "room-1", False),
        ("service_role", "room-2", True),
    ],
)
def test_realtime_authorizes_private_channels_by_policy(
    stack: Stack, realtime_objects: None, role: str, topic: str, allowed: bool
) -> None:
    """Realtime's check, as its Authorization runs it: as the request's role, may it read
    (receive) and insert (send) messages of the topic? A policy answers, not a 42501 on the
    schema."""
    read = f"SELECT topic FROM {MESSAGES} WHERE topic = current_setting('realtime.topic')"
    with request(stack, role, "supabase_admin", sub=ALICE, topic=topic) as conn:
        assert values(conn, read) == ([topic] if allowed else [])
    with request(stack, role, "supabase_admin", sub=ALICE, topic=topic) as conn:
        write = f"INSERT INTO {MESSAGES} (topic, extension) VALUES (%s, 'broadcast')"
        if allowed:
            conn.execute(write, (topic,))
        else:
            with pytest.raises(psycopg.errors.InsufficientPrivilege, match=RLS_REFUSED):
                conn.execute(write, (topic,))


# -- roles, database -------------------------------------------------------------------------


def test_roles_and_database_privileges_match_upstream(stack: Stack) -> None:
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        inherit: dict[str, bool] = dict(
            conn.execute(
                "SELECT rolname, rolinherit FROM pg_roles WHERE rolname = ANY(%s)",
                (list(API_ROLES),),
            ).fetchall()
        )
        assert inherit == dict.fromkeys(API_ROLES, True)
        checks = {
            "has_database_privilege('supabase_storage_admin', current_database(), 'CREATE')",
            "has_database_privilege('supabase_auth_admin', current_database(), 'CREATE')",
            "has_database_privilege('dashboard_user', current_database(), 'CREATE')",
            "has_schema_privilege('dashboard_user', 'auth', 'CREATE')",
            "has_schema_privilege('dashboard_user', 'storage', 'CREATE')",
            "has_schema_privilege('dashboard_user', 'extensions', 'CREATE')",
            *(f"has_schema_privilege('{role}', 'realtime', 'USAGE')" for role in API_ROLES),
        }
        failed = {c for c in checks if conn.execute(f"SELECT {c}").fetchone() != (True,)}
        assert not failed
    with psycopg.connect(stack.lab.dsn("rw", role="authenticator"), autocommit=True) as conn:
        assert conn.execute("SHOW lock_timeout").fetchone() == ("8s",)
    with psycopg.connect(stack.lab.dsn("rw", role="supabase_admin"), autocommit=True) as conn:
        assert conn.execute("SELECT uuid_generate_v4() IS NOT NULL").fetchone() == (True,)


def test_the_migration_opens_what_the_services_created_before_it(stack: Stack) -> None:
    """A lab where Storage and GoTrue ran before 0006: their objects carry no grant (simulated by
    revoking what the default privileges gave) until the migration, applied again, grants them."""
    assert MIGRATION is not None, "no migrations/0006_*.sql"
    table, seq, auth = f"storage.{P}_before", f"storage.{P}_before_seq", f"auth.{P}_before"
    revoke = "REVOKE ALL ON {} FROM anon, authenticated, service_role, dashboard_user"
    run(
        stack,
        "supabase_storage_admin",
        f"CREATE TABLE {table} (id int); CREATE SEQUENCE {seq}; "
        f"{revoke.format(table)}; {revoke.format('SEQUENCE ' + seq)}",
    )
    run(stack, "supabase_auth_admin", f"CREATE TABLE {auth} (id int); {revoke.format(auth)}")
    try:
        with request(stack, "anon") as conn:
            assert values(conn, f"SELECT has_table_privilege('{table}', 'SELECT')") == [False]
        run(stack, "postgres", MIGRATION.read_text())
        for role in API_ROLES:
            with request(stack, role) as conn:
                assert values(conn, f"SELECT count(*) FROM {table}") == [0]
                assert values(conn, f"SELECT nextval('{seq}') > 0") == [True]
        with as_dashboard_user(stack) as conn:
            assert values(conn, f"SELECT count(*) FROM {auth}") == [0]
    finally:
        run(stack, "supabase_storage_admin", f"DROP TABLE {table}; DROP SEQUENCE {seq}")
        run(stack, "supabase_auth_admin", f"DROP TABLE {auth}")
