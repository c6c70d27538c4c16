"""The read-only preflight of a move: each item passes, is handled by `start` (and says
how), or fails with the fix. Nothing is written on either side."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from harness.core.errors import HarnessError
from harness.migration.catalog import (
    Conn,
    carried_tables,
    connect,
    existing,
    scalar,
    without_identity,
)
from harness.migration.plan import NAME, RENAMES, Move, clean_name

Verdict = Literal["pass", "handled", "fail"]


@dataclass(frozen=True)
class Item:
    name: str
    verdict: Verdict
    detail: str
    fix: str = ""


def source_items(source: Conn) -> list[Item]:
    items = []
    level = scalar(source, "show wal_level")
    items.append(
        Item(
            "wal_level",
            "pass" if level == "logical" else "fail",
            f"wal_level = {level}",
            "" if level == "logical" else "set wal_level = logical and restart the source",
        )
    )
    slots = source.execute(
        "select current_setting('max_replication_slots')::int - (select count(*) from "
        "pg_replication_slots), current_setting('max_wal_senders')::int - (select count(*) "
        "from pg_stat_replication)"
    ).fetchone()
    assert slots is not None
    free_slots, free_senders = slots
    items.append(
        Item(
            "replication slots and senders",
            "pass" if free_slots >= 1 and free_senders >= 1 else "fail",
            f"{free_slots} slots and {free_senders} WAL senders free",
            "raise max_replication_slots / max_wal_senders, or drop an unused slot",
        )
    )
    rights = source.execute(
        "select rolname, rolsuper, rolreplication from pg_roles where rolname = current_user"
    ).fetchone()
    assert rights is not None
    role, superuser, replication = rights
    items.append(
        Item(
            "rights of the login role",
            "pass" if superuser or replication else "fail",
            f"{role}: "
            + (
                "superuser"
                if superuser
                else "REPLICATION"
                if replication
                else "neither superuser nor REPLICATION"
            ),
            f"log in as a role with REPLICATION that owns the tables (ALTER ROLE {role} "
            "REPLICATION)",
        )
    )
    return items


def table_items(source: Conn, cluster: Conn, reset: bool) -> list[Item]:
    tables = carried_tables(source)
    items = []
    unreadable = [
        r[0]
        for r in source.execute(
            "select t from unnest(%s::text[]) t where not has_table_privilege(t, 'SELECT')",
            (tables,),
        )
    ]
    items.append(
        Item(
            "the login role reads every table",
            "fail" if unreadable else "pass",
            f"no SELECT on {', '.join(unreadable)}" if unreadable else f"{len(tables)} tables",
            "GRANT SELECT on them to the login role (the initial copy reads them)",
        )
    )
    bare = without_identity(source, tables)
    items.append(
        Item(
            "replica identity",
            "handled" if bare else "pass",
            f"no primary key: {', '.join(bare)}; start sets REPLICA IDENTITY FULL on them"
            if bare
            else f"all {len(tables)} tables have a primary key",
        )
    )
    collisions = [t for t in tables if clean_name(t) != t and clean_name(t) in tables]
    on_cluster = existing(cluster, [clean_name(t) for t in tables])
    carried_as_is = [t for t in tables if clean_name(t) not in on_cluster]
    items.append(
        Item(
            "rename map",
            "fail" if collisions else "handled" if carried_as_is else "pass",
            f"{', '.join(collisions)} would be renamed onto a table that exists"
            if collisions
            else (
                f"renamed: {', '.join(f'{a} -> {b}' for a, b in RENAMES.items())}; "
                f"not in the clean schema, carried as the source defines them: "
                f"{', '.join(carried_as_is) or 'none'}"
            ),
            "rename the source's table or change the map" if collisions else "",
        )
    )
    missing = [
        r[0]
        for r in source.execute(
            "select extname from pg_extension where extname <> 'plpgsql' order by 1"
        )
        if r[0]
        not in {
            a[0] for a in cluster.execute("select name from pg_available_extensions").fetchall()
        }
    ]
    items.append(
        Item(
            "extensions",
            "fail" if missing else "pass",
            f"missing on the cluster: {', '.join(missing)}" if missing else "all available",
            "install their packages on the cluster, or drop them on the source",
        )
    )
    filled = [t for t in sorted(on_cluster) if scalar(cluster, f"select exists (select from {t})")]
    items.append(
        Item(
            "empty target",
            "handled" if filled and reset else "fail" if filled else "pass",
            f"rows on the cluster in {', '.join(filled)}"
            + ("; --reset empties them" if reset else "")
            if filled
            else "the cluster's tables are empty",
            "" if reset else "pass --reset to delete them before the copy",
        )
    )
    return items


def running(cluster: Conn) -> bool:
    return bool(
        scalar(cluster, "select exists (select from pg_subscription where subname = %s)", (NAME,))
    )


def check(move: Move, *, reset: bool = False) -> list[Item]:
    """Every preflight item; an unreachable side is an item too, not an exception."""
    items: list[Item] = []
    try:
        source = connect(move.source_dsn, "source")
    except HarnessError as exc:
        return [Item("source reachable", "fail", exc.message, exc.hint)]
    with source:
        items.append(Item("source reachable", "pass", str(scalar(source, "select version()"))[:40]))
        items += source_items(source)
        with connect(move.cluster_dsn, "cluster") as cluster:
            if running(cluster):
                items.append(
                    Item(
                        "no move running",
                        "fail",
                        f"subscription {NAME} exists on the cluster",
                        "`harness migration status` shows it; `harness migration finish` ends it",
                    )
                )
            items += table_items(source, cluster, reset)
    return items
