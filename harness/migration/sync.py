"""Sync: the cluster's tables under the source's names, a publication on the source, a
subscription on the cluster's leader; the initial copy, then streaming; and its status.

Slots: the forward path's slot lives on the source, so a Patroni failover of the cluster
keeps it (the subscription is a catalog object the new leader has, and the replication
origin's progress is replayed from WAL, so the new leader's apply worker resumes where the
old one stopped). A slot on the cluster (the reverse path of a rollback window) is another
matter: a Patroni permanent slot or a PG 17 failover slot, see docs/migration.md.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from harness.core.errors import HarnessError, StateError
from harness.core.polling import holds, poll
from harness.core.progress import Say, silent
from harness.migration.catalog import (
    Conn,
    carried_tables,
    columns,
    connect,
    existing,
    scalar,
    without_identity,
)
from harness.migration.check import check
from harness.migration.plan import MARKS, NAME, REVERSE, Move, clean_name, quoted
from harness.migration.slots import SlotKeeper

COPY_TIMEOUT = 3600.0
DumpDdl = Callable[[list[str]], str]  # tables -> pg_dump --schema-only of exactly those
MARKS_DDL = f"""
CREATE SCHEMA IF NOT EXISTS {NAME};
CREATE TABLE IF NOT EXISTS {MARKS} (
    id uuid PRIMARY KEY DEFAULT gen_random_uuid(),  -- written on both sides: no sequence
    note text NOT NULL,
    at timestamptz NOT NULL DEFAULT clock_timestamp()
)"""
AUTH_UID = "auth.uid()"


@dataclass
class StartReport:
    renamed: list[tuple[str, str]] = field(default_factory=list)  # cluster: clean -> legacy
    created: list[str] = field(default_factory=list)  # carried as the source defines them
    identity_full: list[str] = field(default_factory=list)
    made_uid: bool = False  # auth.uid() made on the cluster for the carried policies
    tables: int = 0
    seconds: dict[str, float] = field(default_factory=dict)


def runnable_ddl(dump: str) -> str:
    """pg_dump's output without psql's meta-commands (17.6+ adds \\restrict lines)."""
    return "\n".join(line for line in dump.splitlines() if not line.startswith("\\"))


def prepare_cluster(
    source: Conn,
    cluster: Conn,
    tables: list[str],
    dump_ddl: DumpDdl,
    reset: bool,
    report: StartReport,
) -> StartReport:
    """Each carried table on the cluster under the source's name: the clean schema's table
    renamed for the window, or the source's own definition. `report` is filled as it goes,
    so an interrupted preparation can be undone exactly."""
    report.tables = len(tables)
    clean = existing(cluster, [clean_name(t) for t in tables])
    if reset and clean:
        cluster.execute(f"TRUNCATE {', '.join(sorted(clean))} RESTART IDENTITY CASCADE")
    for table in tables:
        target = clean_name(table)
        if target in clean and target != table:
            name = table.rpartition(".")[2]
            # An earlier rehearsal's compatibility view holds the legacy name.
            cluster.execute(
                sql.SQL("DROP VIEW IF EXISTS {}").format(sql.Identifier(*table.split(".")))
            )
            cluster.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    sql.Identifier(*target.split(".")), sql.Identifier(name)
                )
            )
            report.renamed.append((target, table))
    missing = [t for t in tables if clean_name(t) not in clean]
    if missing:
        # Policies of carried tables call auth.uid(): GoTrue's function, absent without it.
        lacks_uid = scalar(cluster, "select to_regprocedure(%s) is null", (AUTH_UID,))
        definition = scalar(
            source,
            "select pg_get_functiondef(p) from to_regprocedure(%s) p where p is not null",
            (AUTH_UID,),
        )
        if lacks_uid and definition:
            cluster.execute("CREATE SCHEMA IF NOT EXISTS auth")
            report.made_uid = True
            cluster.execute(definition)
        ddl = runnable_ddl(dump_ddl(missing)).encode()
        report.created = missing  # one script, one implicit transaction: all or none
        cluster.execute(ddl)
        cluster.execute("RESET search_path")  # pg_dump's script empties it for the session
    return report


def start(move: Move, dump_ddl: DumpDdl, *, reset: bool = False, say: Say = silent) -> StartReport:
    """Preflight, then the cluster's tables, the publication, the subscription. Returns once
    the subscription exists; `wait_copied` follows the initial copy."""
    failed = [i for i in check(move, reset=reset) if i.verdict == "fail"]
    if failed:
        first = failed[0]
        raise StateError(
            f"preflight failed: {first.name}: {first.detail}"
            + (f" (and {len(failed) - 1} more)" if len(failed) > 1 else ""),
            first.fix or "`harness migration check` lists every item",
        )
    report = StartReport()
    try:
        prepare(move, dump_ddl, reset, report, say)
    except BaseException:  # Ctrl-C or an error half-way: put both sides back
        with (
            connect(move.source_dsn, "source") as source,
            connect(move.cluster_dsn, "cluster") as cl,
        ):
            undo_start(source, cl, report)
        raise
    return report


def undo_start(source: Conn, cluster: Conn, report: StartReport) -> None:
    """What a preparation that did not finish made, removed: the subscription (and its slot)
    and the publication, the marks, the tables it created, the clean names given back. Kept:
    rows a --reset deleted, REPLICA IDENTITY FULL (harmless), and an earlier rehearsal's
    compatibility views (a cutover makes them again)."""
    drop_subscription(cluster, NAME, "cluster", FinishReport(), detach=False)
    source.execute(f"DROP PUBLICATION IF EXISTS {NAME}")
    for side in (source, cluster):
        side.execute(f"DROP SCHEMA IF EXISTS {NAME} CASCADE")
    with cluster.transaction():
        for table in reversed(report.created):
            cluster.execute(
                sql.SQL("DROP TABLE IF EXISTS {} CASCADE").format(sql.Identifier(*table.split(".")))
            )
        if report.made_uid:
            cluster.execute(f"DROP FUNCTION IF EXISTS {AUTH_UID}")
        for clean, legacy in report.renamed:
            cluster.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    sql.Identifier(*legacy.split(".")), sql.Identifier(clean.rpartition(".")[2])
                )
            )


def prepare(move: Move, dump_ddl: DumpDdl, reset: bool, report: StartReport, say: Say) -> None:
    with connect(move.source_dsn, "source") as source, connect(move.cluster_dsn, "cluster") as cl:
        tables = carried_tables(source)
        prepare_cluster(source, cl, tables, dump_ddl, reset, report)
        for table in without_identity(source, tables):
            source.execute(f"ALTER TABLE {quoted(table)} REPLICA IDENTITY FULL")
            report.identity_full.append(table)
        for side in (source, cl):
            side.execute(MARKS_DDL.encode())
        cl.execute(f"TRUNCATE {MARKS}")  # the copy brings the source's marks, a rehearsal's too
        published = ", ".join(quoted(t) for t in [*tables, MARKS])
        source.execute(
            f"CREATE PUBLICATION {NAME} FOR TABLE {published} "
            "WITH (publish_via_partition_root = true)"
        )
        say(f"publication {NAME} on the source: {len(tables)} tables")
        cl.execute(
            sql.SQL(
                "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (copy_data = true)"
            ).format(sql.Identifier(NAME), sql.Literal(move.source_conninfo), sql.Identifier(NAME))
        )
        say(f"subscription {NAME} on the cluster: initial copy started")


@dataclass(frozen=True)
class TableState:
    table: str
    state: str  # i init, d copying, f finished copy, s synchronised, r ready (streaming)


STATES = {"i": "init", "d": "copying", "f": "copied", "s": "synced", "r": "streaming"}


@dataclass(frozen=True)
class Status:
    tables: list[TableState]
    lag_bytes: int | None  # WAL the source wrote that the subscription has not confirmed
    lag_seconds: float | None
    slot_active: bool | None
    wal_status: str  # reserved, extended, unreserved, lost; "" without a slot
    held_bytes: int | None  # WAL the source keeps for the slot
    worker: bool  # an apply worker runs on the cluster
    source_error: str = ""
    enabled: bool = True  # the forward subscription applies (false after the cutover)
    drift: list[str] = field(default_factory=list)  # DDL on the source that breaks the apply
    reverse_lag_bytes: int | None = None  # the rollback window's: cluster WAL not yet on the source

    @property
    def copied(self) -> bool:
        return bool(self.tables) and all(t.state in ("s", "r") for t in self.tables)


def status(move: Move) -> Status:
    """The cluster's view (copy state, worker) and the source's (slot, lag); a source that
    went away is a status, not an error."""
    with connect(move.cluster_dsn, "cluster") as cl:
        if not scalar(
            cl, "select exists (select from pg_subscription where subname = %s)", (NAME,)
        ):
            raise StateError(
                f"no move is running: subscription {NAME} is not on the cluster",
                "`harness migration start` begins one",
            )
        tables = [
            TableState(clean_name(f"{r[0]}"), r[1])
            for r in cl.execute(
                """select n.nspname || '.' || c.relname, r.srsubstate from pg_subscription_rel r
                   join pg_subscription s on s.oid = r.srsubid join pg_class c on c.oid = r.srrelid
                   join pg_namespace n on n.oid = c.relnamespace where s.subname = %s order by 1""",
                (NAME,),
            )
        ]
        worker = cl.execute(
            """select extract(epoch from now() - latest_end_time) from pg_stat_subscription
               where subname = %s and relid is null and pid is not null""",
            (NAME,),
        ).fetchone()
        enabled = bool(
            scalar(cl, "select subenabled from pg_subscription where subname = %s", (NAME,))
        )
        reverse = scalar(
            cl,
            "select pg_current_wal_lsn() - confirmed_flush_lsn from pg_replication_slots "
            "where slot_name = %s",
            (REVERSE,),
        )
        behind = None if reverse is None else int(reverse)
    unreachable = ""
    try:
        with connect(move.source_dsn, "source") as source:
            slot = source.execute(
                """select pg_current_wal_lsn() - confirmed_flush_lsn, active, wal_status,
                          pg_current_wal_lsn() - restart_lsn
                   from pg_replication_slots where slot_name = %s""",
                (NAME,),
            ).fetchone()
            with connect(move.cluster_dsn, "cluster") as cl:
                drift = schema_drift(source, cl) if enabled else []
    except HarnessError as exc:
        slot, unreachable = None, exc.message
    if slot is None:
        return Status(
            tables,
            None,
            None,
            None,
            "",
            None,
            worker is not None,
            unreachable or "no slot",
            enabled=enabled,
            reverse_lag_bytes=behind,
        )
    lag, active, wal_status, held = slot
    lag_seconds = float(worker[0]) if worker and worker[0] is not None and lag else 0.0
    return Status(
        tables,
        int(lag),
        lag_seconds,
        bool(active),
        wal_status,
        int(held),
        bool(worker),
        enabled=enabled,
        reverse_lag_bytes=behind,
        drift=drift,
    )


def schema_drift(source: Conn, cluster: Conn) -> list[str]:
    """DDL on the source since `start`, which logical replication does not carry: a column
    the cluster's table lacks stops the apply at that table's next change; a new table is
    not published at all."""
    found = []
    published = {
        r[0]
        for r in source.execute(
            "select schemaname || '.' || tablename from pg_publication_tables where pubname = %s",
            (NAME,),
        )
    }
    for table in carried_tables(source):
        if table not in published:
            found.append(f"{table}: not published (created after start)")
            continue
        there = table if existing(cluster, [table]) else clean_name(table)
        missing = sorted(set(columns(source, table)) - set(columns(cluster, there)))
        if missing:
            found.append(f"{table}: {', '.join(missing)} not on the cluster")
    return found


def wait_copied(
    move: Move, on_progress: Callable[[Status], None], timeout: float = COPY_TIMEOUT
) -> Status:
    def copied(seen: Status) -> bool:
        on_progress(seen)
        return seen.copied

    polled = poll(lambda: status(move), copied, timeout=timeout, interval=0.5)
    if not polled.held:
        raise HarnessError(
            f"the initial copy did not finish within {timeout:.0f} s",
            "`harness migration status` shows each table's state; the copy goes on",
        )
    return polled.value


@dataclass
class FinishReport:
    dropped: list[str] = field(default_factory=list)
    left: list[str] = field(default_factory=list)  # what could not be dropped, with the fix


def drop_subscription(
    conn: Conn, name: str, side: str, report: FinishReport, *, detach: bool = True
) -> None:
    """`detach`: leave the slot to be dropped on its own side (its server may be gone);
    without it, DROP SUBSCRIPTION drops the slot on the publisher too."""
    if scalar(conn, "select exists (select from pg_subscription where subname = %s)", (name,)):
        if detach:
            conn.execute(f"ALTER SUBSCRIPTION {name} DISABLE")
            conn.execute(f"ALTER SUBSCRIPTION {name} SET (slot_name = NONE)")
        conn.execute(f"DROP SUBSCRIPTION {name}")
        report.dropped.append(f"subscription {name} ({side})")


def dropped(conn: Conn, name: str) -> bool:
    """Drop the slot if it is there; whether it is gone. Patroni may drop a slot it was told
    to forget at the same moment, or make it once more in a loop that began before."""
    with contextlib.suppress(psycopg.errors.UndefinedObject):
        conn.execute(
            "select pg_drop_replication_slot(slot_name) from pg_replication_slots "
            "where slot_name = %s and not active",
            (name,),
        )
    return not scalar(
        conn, "select exists (select from pg_replication_slots where slot_name = %s)", (name,)
    )


def drop_slot_and_publication(conn: Conn, name: str, side: str, report: FinishReport) -> None:
    slot = conn.execute(
        "select active_pid from pg_replication_slots where slot_name = %s", (name,)
    ).fetchone()
    if slot is not None:
        if slot[0] is not None:
            conn.execute("select pg_terminate_backend(%s)", (slot[0],))
            poll(
                lambda: scalar(
                    conn, "select active from pg_replication_slots where slot_name = %s", (name,)
                ),
                lambda active: not active,
                timeout=10,
            )
        poll(lambda: dropped(conn, name), holds, timeout=10)
        report.dropped.append(f"slot {name} ({side})")
    if scalar(conn, "select exists (select from pg_publication where pubname = %s)", (name,)):
        conn.execute(f"DROP PUBLICATION {name}")
        report.dropped.append(f"publication {name} ({side})")


def finish(move: Move, slots: SlotKeeper) -> FinishReport:
    """Drop both paths' subscriptions, slots and publications: nothing left that holds WAL.
    The way back's slot leaves Patroni's permanent slots first, or Patroni would make it
    again."""
    report = FinishReport()
    try:
        source: Conn | None = connect(move.source_dsn, "source")
    except HarnessError as exc:
        source = None
        report.left.append(
            f"slot and publication {NAME} on the source ({exc.message}): when it is back, "
            f"run `harness migration finish` again; until then the slot holds its WAL"
        )
    with connect(move.cluster_dsn, "cluster") as cl:
        drop_subscription(cl, NAME, "cluster", report)
        if source is not None:
            drop_subscription(source, REVERSE, "source", report)
        slots.forget(REVERSE)
        drop_slot_and_publication(cl, REVERSE, "cluster", report)
    if source is not None:
        with source:
            drop_slot_and_publication(source, NAME, "source", report)
    return report
