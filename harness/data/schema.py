"""The CRM schema: yoyo-migrations applies migrations/ under its lock; then the login roles
(crm_app, the Supabase services') get their passwords from .env."""

from __future__ import annotations

import psycopg
from psycopg import sql

from harness.clients.addresses import sqlalchemy_url
from harness.lab.project import LOOPBACK, ROLE_SECRETS, Lab


def migrations_url(lab: Lab) -> str:
    return sqlalchemy_url(
        LOOPBACK,
        lab.ports["rw"],
        "postgres",
        lab.secret("POSTGRES_PASSWORD"),
        "postgres",
        str(lab.tls.ca_file),
    )


def migrate(lab: Lab) -> list[str]:
    """Apply pending migrations; set the login roles' passwords. Returns the ids applied."""
    from yoyo import get_backend, read_migrations

    backend = get_backend(migrations_url(lab))
    migrations = read_migrations(str(lab.root / "migrations"))
    with backend.lock():
        pending = backend.to_apply(migrations)
        backend.apply_migrations(pending)
    with psycopg.connect(lab.dsn("rw"), autocommit=True) as conn:
        for role, key in ROLE_SECRETS.items():
            if role != "postgres":
                conn.execute(
                    sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(lab.secret(key))
                    )
                )
    return [m.id for m in pending]
