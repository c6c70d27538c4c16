"""What either side's catalog says about the carried tables: one set of queries for check,
start, status, cutover and verify."""

from __future__ import annotations

from typing import Any

import psycopg

from harness.clients.addresses import connection_error
from harness.migration.plan import APP_SCHEMAS, PLATFORM_TABLES

Conn = psycopg.Connection[Any]

# Tables and partitioned roots (never partitions: the root is published and compared).
TABLES = """
select n.nspname || '.' || c.relname
from pg_class c join pg_namespace n on n.oid = c.relnamespace
where c.relkind in ('r', 'p') and not c.relispartition
  and (n.nspname = any(%s) or (n.nspname || '.' || c.relname) = any(%s))
order by 1"""


def connect(dsn: str, what: str) -> Conn:
    """An autocommit connection, or a one-line error naming the side."""
    try:
        return psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
    except psycopg.OperationalError as exc:
        raise connection_error(
            exc, what, "is it up? `harness up --source` starts the lab's source and endpoint", dsn
        ) from None


def carried_tables(conn: Conn) -> list[str]:
    """Every table of the app schemas, and the platform tables the app refers to."""
    return [r[0] for r in conn.execute(TABLES, (list(APP_SCHEMAS), list(PLATFORM_TABLES)))]


def existing(conn: Conn, tables: list[str]) -> set[str]:
    rows = conn.execute(
        "select t from unnest(%s::text[]) t where to_regclass(t) is not null", (tables,)
    )
    return {r[0] for r in rows}


def without_identity(conn: Conn, tables: list[str]) -> list[str]:
    """Tables whose UPDATE/DELETE cannot be published: no primary key, no identity set."""
    rows = conn.execute(
        """select t from unnest(%s::text[]) t join pg_class c on c.oid = to_regclass(t)
           where c.relreplident = 'n' or (c.relreplident = 'd' and not exists (
               select from pg_index i where i.indrelid = c.oid and i.indisprimary))
           order by 1""",
        (tables,),
    )
    return [r[0] for r in rows]


def columns(conn: Conn, table: str) -> list[str]:
    """Stored columns, by name: the order of creation may differ between the two sides."""
    rows = conn.execute(
        """select attname from pg_attribute where attrelid = to_regclass(%s)
           and attnum > 0 and not attisdropped order by attname""",
        (table,),
    )
    return [r[0] for r in rows]


def sequences(conn: Conn, table: str) -> list[tuple[str, str]]:
    """(column, sequence) for each identity or serial column of the table."""
    rows = conn.execute(
        """select a.attname, pg_get_serial_sequence(%s, a.attname)
           from pg_attribute a where a.attrelid = to_regclass(%s) and a.attnum > 0
           and not a.attisdropped and pg_get_serial_sequence(%s, a.attname) is not null""",
        (table, table, table),
    )
    return [(r[0], r[1]) for r in rows]


def scalar(conn: Conn, query: str, params: tuple[Any, ...] | None = None) -> Any:
    row = conn.execute(query, params).fetchone()
    return row[0] if row else None
