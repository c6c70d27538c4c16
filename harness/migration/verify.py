"""Row-by-row comparison of every carried table, source against cluster through the rename
map: counts and a content checksum over the columns both sides have, by name; on a
difference, the first differing keys.

Tables keyed by an integer `id` are compared up to the largest id of the side the
application does not write to: rows above it are the live side's own, written after the
switch (the sequences were set past it). After the cutover the cluster is live and every
source row must be on it; after a rollback the source is live and every row the cluster
took must have come back; while streaming, rows still in flight to the cluster are above
its largest id and so not counted as differences.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Literal

from harness.migration.catalog import Conn, carried_tables, columns, connect, existing, scalar
from harness.migration.plan import Move, clean_name, quoted

BUCKET = 1000  # ids per bucket when looking for the first differing keys
FIRST_KEYS = 5
INTEGER_TYPES = ("bigint", "integer", "smallint")
Side = Literal["source", "cluster"]


@dataclass(frozen=True)
class Comparison:
    source_table: str
    cluster_table: str
    source: tuple[int, int]  # rows, checksum
    cluster: tuple[int, int]
    bound: int | None  # ids compared up to this one (None: the whole table)
    first_keys: list[int] = field(default_factory=list)
    missing_columns: list[str] = field(default_factory=list)  # on the source, not the cluster

    @property
    def passed(self) -> bool:
        return self.source == self.cluster and not self.missing_columns


def integer_id(conn: Conn, table: str) -> bool:
    kind = scalar(
        conn,
        "select atttypid::regtype::text from pg_attribute where attrelid = to_regclass(%s) "
        "and attname = 'id' and not attisdropped",
        (table,),
    )
    return kind in INTEGER_TYPES


def digest_sql(table: str, cols: list[str], where: str, group: str = "") -> str:
    row = ", ".join(f'"{c}"' for c in cols)
    select = f"{group}, " if group else ""
    tail = " group by 1 order by 1" if group else ""
    return (
        f"select {select}count(*), coalesce(sum(hashtextextended(row({row})::text, 0)), 0) "
        f"from {quoted(table)} {where}{tail}"
    )


def first_keys(
    source: Conn, cluster: Conn, pair: tuple[str, str], cols: list[str], where: str
) -> list[int]:
    """Find the first bucket of ids whose digests differ, then the ids in it that differ."""
    bucket = f"id / {BUCKET}"
    sides = [
        {r[0]: (r[1], r[2]) for r in conn.execute(digest_sql(t, cols, where, bucket))}
        for conn, t in ((source, pair[0]), (cluster, pair[1]))
    ]
    differing = sorted(
        b for b in sides[0].keys() | sides[1].keys() if sides[0].get(b) != sides[1].get(b)
    )
    if not differing:
        return []
    low, high = differing[0] * BUCKET, (differing[0] + 1) * BUCKET
    row = ", ".join(f'"{c}"' for c in cols)
    rows = [
        dict(
            conn.execute(
                f"select id, hashtextextended(row({row})::text, 0) from {quoted(t)} "
                f"where id >= {low} and id < {high}"
            ).fetchall()
        )
        for conn, t in ((source, pair[0]), (cluster, pair[1]))
    ]
    keys = sorted(k for k in rows[0].keys() | rows[1].keys() if rows[0].get(k) != rows[1].get(k))
    return keys[:FIRST_KEYS]


def compare_table(source: Conn, cluster: Conn, table: str, live: Side) -> Comparison:
    clean = clean_name(table)
    target = clean if existing(cluster, [clean]) and table_kind(cluster, clean) else table
    source_cols, cluster_cols = columns(source, table), columns(cluster, target)
    common = [c for c in source_cols if c in cluster_cols]
    missing = [c for c in source_cols if c not in cluster_cols]
    bound = None
    where = ""
    if integer_id(source, table):
        other, name = (source, table) if live == "cluster" else (cluster, target)
        bound = int(scalar(other, f"select coalesce(max(id), 0) from {quoted(name)}"))
        where = f"where id <= {bound}"
    digests = []
    for conn, name in ((source, table), (cluster, target)):
        row = conn.execute(digest_sql(name, common, where)).fetchone()
        assert row is not None
        digests.append((int(row[0]), int(row[1])))
    keys: list[int] = []
    if digests[0] != digests[1] and bound is not None:
        keys = first_keys(source, cluster, (table, target), common, where)
    return Comparison(table, target, digests[0], digests[1], bound, keys, missing)


def table_kind(conn: Conn, table: str) -> bool:
    """Whether the name is a table (not the compatibility view the cutover leaves)."""
    return bool(
        scalar(
            conn, "select relkind in ('r', 'p') from pg_class where oid = to_regclass(%s)", (table,)
        )
    )


def verify(move: Move, live: Side, skip: Collection[str] = ()) -> list[Comparison]:
    """`live`: the side the application endpoint points at. `skip`: tables checked some other
    way (the drill's writers' table, ack by ack: its ids are not one sequence)."""
    with connect(move.source_dsn, "source") as source, connect(move.cluster_dsn, "cluster") as cl:
        for conn in (source, cl):  # rows are hashed as text: both sides must print alike
            conn.execute(
                "SET TimeZone = 'UTC'; SET DateStyle = 'ISO, MDY'; SET extra_float_digits = 1"
            )
        return [compare_table(source, cl, t, live) for t in carried_tables(source) if t not in skip]
