"""The cutover: pause the endpoint, wait until the cluster applied everything the source
wrote, carry the sequences, stop applying, rename to the clean names, open the way back,
repoint, resume. The rollback: the same in reverse, inside that window.

The way back: under PAUSE the cluster gets a publication and a logical slot, so every write
it takes from then on is kept for the source; the source takes the clean names too (legacy
names as views, as on the cluster) and subscribes from that slot (origin = none) right after
the resume. Patroni drops slots it does not know, and a slot lives on one server: the way
back's is a Patroni permanent slot (harness.migration.slots), which Patroni keeps and copies
to the replicas; `rollback` refuses, saying so, if the slot is gone anyway.

Caught up is proven, not estimated: under PAUSE a row goes into the source's marks table
(published like the rest); commits apply in order, so once that row is on the cluster,
everything the source committed before it is too. Waiting for the slot's
confirmed_flush_lsn to pass pg_current_wal_lsn() works as well but follows the
subscriber's status interval (up to wal_receiver_status_interval, 10 s by default).

Whatever happens in between (an error, Ctrl-C), the endpoint is resumed: pointing at the
source when the repoint did not happen, at the cluster when it did. The legacy names stay
on the cluster as updatable views (security_invoker, so row-level security still applies)
for the application's old queries; drop them once it uses the clean names.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field

import psycopg
from psycopg import sql

from harness.core.errors import HarnessError, StateError
from harness.core.polling import poll
from harness.core.progress import Say, silent
from harness.core.units import format_bytes
from harness.migration.catalog import Conn, carried_tables, connect, scalar, sequences
from harness.migration.endpoint import Endpoint
from harness.migration.plan import (
    LAG_THRESHOLD,
    MARKS,
    NAME,
    REVERSE,
    Move,
    clean_name,
    quoted,
)
from harness.migration.slots import SlotKeeper
from harness.migration.sync import status
from harness.migration.verify import Side

VIEW_ROLES = ("crm_app", "authenticated", "service_role")
Step = Callable[[Conn, Conn, list[str], "CutoverReport"], None]  # source, cluster, tables
Undo = Callable[[Conn, Conn, "CutoverReport"], None]


@dataclass
class CutoverReport:
    steps: dict[str, float] = field(default_factory=dict)  # step -> seconds, in order
    paused_seconds: float = 0.0  # PAUSE issued to RESUME answered: the write gap's bound
    sequences: dict[str, int] = field(default_factory=dict)  # sequence -> value set
    renamed: list[tuple[str, str]] = field(default_factory=list)
    orphans: dict[str, int] = field(default_factory=dict)  # foreign key -> rows without parent
    repointed: bool = False

    @contextmanager
    def step(self, name: str) -> Iterator[None]:
        start = time.monotonic()
        try:
            yield
        finally:
            self.steps[name] = time.monotonic() - start


def refuse_unless_ready(move: Move, threshold: int) -> None:
    current = status(move)
    if current.source_error:
        raise StateError(
            f"the source cannot be read ({current.source_error}): cannot prove the cluster "
            "caught up",
            "`harness migration status`; bring the source back before the cutover",
        )
    if not current.copied:
        pending = [t.table for t in current.tables if t.state not in ("s", "r")]
        raise StateError(
            f"the initial copy is not finished: {', '.join(pending[:5])}",
            "wait for `harness migration status` to show every table streaming",
        )
    lag = current.lag_bytes or 0
    if lag > threshold:
        raise StateError(
            f"lag is {format_bytes(lag)} ({current.lag_seconds or 0:.1f} s), above the "
            f"threshold of {format_bytes(threshold)}",
            "wait for it to fall (`harness migration status`), or raise --max-lag",
        )


def sync_sequences(other: Conn, target: Conn, tables: list[str]) -> dict[str, int]:
    """Every sequence of `target` past both its column's maximum and `other`'s value of the
    same sequence: sequences are not replicated, so the target's lag behind."""
    done: dict[str, int] = {}
    for table in tables:
        for column, sequence in sequences(target, table):
            top = scalar(target, f'select max("{column}") from {quoted(table)}')
            there = scalar(
                other,
                "select last_value from pg_sequences where schemaname || '.' || sequencename = "
                "%s or quote_ident(schemaname) || '.' || quote_ident(sequencename) = %s",
                (sequence, sequence),
            )
            value = max(v for v in (top, there, 1) if v is not None)
            target.execute("select setval(%s, %s)", (sequence, value))
            done[sequence] = int(value)
    return done


def rename(conn: Conn, tables: list[str]) -> list[tuple[str, str]]:
    """Legacy names to clean ones in one transaction; the legacy name becomes a view."""
    renamed = []
    with conn.transaction():
        for table in tables:
            target = clean_name(table)
            if target == table:
                continue
            schema, _, legacy = table.rpartition(".")
            clean = target.rpartition(".")[2]
            conn.execute(
                sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                    sql.Identifier(schema, legacy), sql.Identifier(clean)
                )
            )
            conn.execute(
                sql.SQL("CREATE VIEW {} WITH (security_invoker = true) AS SELECT * FROM {}").format(
                    sql.Identifier(schema, legacy), sql.Identifier(schema, clean)
                )
            )
            conn.execute(
                sql.SQL("GRANT SELECT, INSERT, UPDATE, DELETE ON {} TO {}").format(
                    sql.Identifier(schema, legacy),
                    sql.SQL(", ").join(sql.Identifier(r) for r in VIEW_ROLES),
                )
            )
            renamed.append((table, target))
    return renamed


def undo_cutover(source: Conn, cluster: Conn, report: CutoverReport) -> None:
    """A cutover stopped before the repoint leaves things as they were (sequences aside,
    which only moved forward): legacy names back, no way back (the switch then lets the
    subscription apply again)."""
    cluster.execute(f"DROP PUBLICATION IF EXISTS {REVERSE}")
    cluster.execute(
        "select pg_drop_replication_slot(slot_name) from pg_replication_slots where slot_name = %s",
        (REVERSE,),
    )
    for conn in (cluster, source):
        with conn.transaction():
            for legacy, clean in report.renamed:
                relkind = scalar(
                    conn, "select relkind from pg_class where oid = to_regclass(%s)", (legacy,)
                )
                if relkind == "v":
                    conn.execute(sql.SQL("DROP VIEW {}").format(sql.Identifier(*legacy.split("."))))
                    conn.execute(
                        sql.SQL("ALTER TABLE {} RENAME TO {}").format(
                            sql.Identifier(*clean.split(".")),
                            sql.Identifier(legacy.rpartition(".")[2]),
                        )
                    )
    report.renamed = []


def wait_applied(writer: Conn, reader: Conn, timeout: float) -> str:
    """A mark written on one side, awaited on the other: commits apply in order."""
    mark = scalar(writer, f"insert into {MARKS} (note) values ('switch') returning id")
    polled = poll(
        lambda: bool(scalar(reader, f"select exists (select from {MARKS} where id = %s)", (mark,))),
        bool,
        timeout=timeout,
        interval=0.01,
    )
    if not polled.held:
        raise HarnessError(
            f"the other side did not apply the last writes within {timeout:.0f} s",
            "nothing was switched; `harness migration status` shows the apply worker",
        )
    return str(mark)


def orphans(cluster: Conn, tables: list[str]) -> dict[str, int]:
    """Rows whose foreign key has no parent: the apply worker checks no foreign keys."""
    found: dict[str, int] = {}
    rows = cluster.execute(
        """select conname, conrelid::regclass::text, confrelid::regclass::text,
                  array(select attname from unnest(conkey) k join pg_attribute a
                        on a.attrelid = conrelid and a.attnum = k),
                  array(select attname from unnest(confkey) k join pg_attribute a
                        on a.attrelid = confrelid and a.attnum = k)
           from pg_constraint where contype = 'f' and conrelid = any(%s::regclass[])
             and conparentid = 0""",
        ([clean_name(t) for t in tables],),
    ).fetchall()
    for name, child, parent, keys, refs in rows:
        present = " and ".join(f'c."{k}" is not null' for k in keys)
        match = " and ".join(f'p."{r}" = c."{k}"' for k, r in zip(keys, refs, strict=True))
        count = scalar(
            cluster,
            f"select count(*) from {child} c where {present} "
            f"and not exists (select from {parent} p where {match})",
        )
        if count:
            found[f"{child}.{name}"] = int(count)
    return found


def open_reverse_slot(cluster: Conn, tables: list[str], slots: SlotKeeper) -> None:
    """Under PAUSE: the cluster's publication and slot for the way back. The slot's start is
    before any write the cluster takes, so a rollback carries every one of them. It is
    declared to Patroni first (which would drop an unknown slot), then made at once rather
    than at Patroni's next loop; if Patroni was quicker, its slot is as good."""
    published = ", ".join(quoted(clean_name(t)) for t in [*tables, MARKS])
    cluster.execute(
        f"CREATE PUBLICATION {REVERSE} FOR TABLE {published} "
        "WITH (publish_via_partition_root = true)"
    )
    slots.keep(REVERSE)
    with suppress(psycopg.errors.DuplicateObject):
        cluster.execute("select pg_create_logical_replication_slot(%s, 'pgoutput')", (REVERSE,))


def subscribe_back(source: Conn, move: Move) -> None:
    """The source follows the cluster from the slot made under PAUSE; origin = none keeps the
    forward path's own changes from coming back."""
    source.execute(
        sql.SQL(
            "CREATE SUBSCRIPTION {} CONNECTION {} PUBLICATION {} WITH (create_slot = false, "
            "slot_name = {}, copy_data = false, origin = none)"
        ).format(
            sql.Identifier(REVERSE),
            sql.Literal(move.cluster_conninfo),
            sql.Identifier(REVERSE),
            sql.Literal(REVERSE),
        )
    )


@dataclass(frozen=True)
class Switch:
    """What sets a cutover apart from a rollback; the rest (pause, catch up, sequences,
    stop applying, repoint, resume always, foreign keys) is one procedure, `switch`."""

    to: Side  # the side the endpoint goes to
    subscription: str  # the one applying `to`'s changes from the other side, stopped
    upstream: tuple[str, int]  # the endpoint's target
    under_pause: Step = lambda source, cluster, tables, report: None  # before the repoint
    undo: Undo = lambda source, cluster, report: None  # stopped before the repoint
    after: Step = lambda source, cluster, tables, report: None  # once resumed


def switch(
    move: Move,
    endpoint: Endpoint,
    plan: Switch,
    *,
    pause_timeout: float,
    catch_up_timeout: float,
    say: Say,
) -> CutoverReport:
    """Under PAUSE: wait until `plan.to` applied everything, carry the sequences, stop its
    apply, the plan's own steps, repoint; the endpoint is resumed whatever happens, and a
    switch stopped before the repoint is undone (pointing where it was)."""
    report = CutoverReport()
    names = {"source": "the source", "cluster": "the cluster"}
    other: Side = "cluster" if plan.to == "source" else "source"
    with connect(move.source_dsn, "source") as source, connect(move.cluster_dsn, "cluster") as cl:
        old, new = (source, cl) if plan.to == "cluster" else (cl, source)
        tables = carried_tables(source)
        paused_at = time.monotonic()
        with report.step("pause"):
            endpoint.pause(pause_timeout)
        try:
            with report.step("catch-up"):
                wait_applied(old, new, catch_up_timeout)
            with report.step("sequences"):
                report.sequences = sync_sequences(old, new, tables)
            with report.step("stop apply"):
                new.execute(f"ALTER SUBSCRIPTION {plan.subscription} DISABLE")
            plan.under_pause(source, cl, tables, report)
            with report.step("repoint"):
                endpoint.repoint(*plan.upstream)
                report.repointed = True
        except BaseException:
            if not report.repointed:  # still paused on the old side: put both sides back
                plan.undo(source, cl, report)
                new.execute(f"ALTER SUBSCRIPTION {plan.subscription} ENABLE")
            raise
        finally:
            with report.step("resume"):
                endpoint.resume()
            report.paused_seconds = time.monotonic() - paused_at
            where = names[plan.to] if report.repointed else names[other]
            say(f"endpoint resumed on {where} after {report.paused_seconds:.2f} s paused")
        plan.after(source, cl, tables, report)
        with report.step("foreign keys"):
            report.orphans = orphans(new, tables)
    return report


def cutover(
    move: Move,
    endpoint: Endpoint,
    *,
    max_lag: int = LAG_THRESHOLD,
    pause_timeout: float = 10.0,
    catch_up_timeout: float = 30.0,
    slots: SlotKeeper,
    say: Say = silent,
) -> CutoverReport:
    """Switch to the cluster, opening the rollback window: the source takes the clean names
    too (legacy names as views, as on the cluster) and follows the cluster from then on."""
    refuse_unless_ready(move, max_lag)

    def rename_and_open_the_way_back(
        source: Conn, cluster: Conn, tables: list[str], report: CutoverReport
    ) -> None:
        with report.step("rename"):
            report.renamed = rename(cluster, tables)
            rename(source, tables)
        with report.step("reverse slot"):
            open_reverse_slot(cluster, tables, slots)

    def undo(source: Conn, cluster: Conn, report: CutoverReport) -> None:
        slots.forget(REVERSE)
        undo_cutover(source, cluster, report)

    def follow_back(source: Conn, cluster: Conn, tables: list[str], report: CutoverReport) -> None:
        with report.step("reverse subscription"):
            subscribe_back(source, move)

    plan = Switch(
        "cluster", NAME, move.cluster_upstream, rename_and_open_the_way_back, undo, follow_back
    )
    return switch(
        move,
        endpoint,
        plan,
        pause_timeout=pause_timeout,
        catch_up_timeout=catch_up_timeout,
        say=say,
    )


def refuse_unless_window(move: Move, max_lag: int) -> None:
    with connect(move.source_dsn, "source") as source:
        enabled = scalar(
            source, "select subenabled from pg_subscription where subname = %s", (REVERSE,)
        )
    if not enabled:
        raise StateError(
            "no rollback window is open: the source does not follow the cluster "
            f"(subscription {REVERSE})",
            "a rollback follows a `harness migration cutover`; `status` shows the state",
        )
    with connect(move.cluster_dsn, "cluster") as cl:
        row = cl.execute(
            "select pg_current_wal_lsn() - confirmed_flush_lsn, wal_status "
            "from pg_replication_slots where slot_name = %s",
            (REVERSE,),
        ).fetchone()
    if row is None or row[1] == "lost":
        raise StateError(
            f"the cluster's slot {REVERSE} is {'lost' if row else 'gone'} (a failover without "
            "a permanent slot?): the source cannot receive the cluster's writes",
            "do not roll back through the endpoint; docs/migration.md says what then",
        )
    if int(row[0]) > max_lag:
        raise StateError(
            f"the source is {format_bytes(int(row[0]))} behind the cluster, above "
            f"{format_bytes(max_lag)}",
            "wait for it to fall, or raise --max-lag",
        )


def rollback(
    move: Move,
    endpoint: Endpoint,
    *,
    max_lag: int = LAG_THRESHOLD,
    pause_timeout: float = 10.0,
    catch_up_timeout: float = 30.0,
    say: Say = silent,
) -> CutoverReport:
    """The cutover in reverse, inside the window: nothing the cluster took is lost."""
    refuse_unless_window(move, max_lag)
    plan = Switch("source", REVERSE, move.source_upstream)
    return switch(
        move,
        endpoint,
        plan,
        pause_timeout=pause_timeout,
        catch_up_timeout=catch_up_timeout,
        say=say,
    )
