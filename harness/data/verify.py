"""Per-table row counts and content checksums on every node, read locally on each, once the
replicas have replayed what the primary had written."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from harness.core.errors import CommandError
from harness.core.polling import holds, poll
from harness.data.scales import TABLES
from harness.lab.topology import NODES

# A replica cancels a reader whose snapshot its replay must remove (even at connection time);
# the query is only asked again.
RECOVERY_CONFLICT = "conflict with recovery"
ATTEMPTS = 5
CHECKSUM = "select '{0}', count(*), coalesce(sum(hashtextextended(t::text, 0)), 0) from {0} t"


def checksums_sql(tables: Sequence[str]) -> str:
    """One statement: a row (table, rows, checksum) per table."""
    return " union all ".join(CHECKSUM.format(table) for table in tables)


@dataclass(frozen=True)
class TableCheck:
    table: str
    per_node: dict[str, tuple[int, int]]  # node -> (rows, checksum)

    @property
    def passed(self) -> bool:
        """Every node holds the same rows."""
        return len(set(self.per_node.values())) == 1


def verify(
    run_sql: Callable[[str, str], str],
    primary: str,
    catch_up_seconds: float = 30,
    tables: tuple[str, ...] = (*TABLES, "app.seed_runs"),
    nodes: Sequence[str] = NODES,
) -> list[TableCheck]:
    """Counts and checksums per table on every node, once replicas replayed the primary's WAL.

    run_sql(node, query) returns the stripped, unaligned result of the query on that node;
    `nodes` are the cluster's members (pg4 and pg5 too when the lab was scaled out).
    """

    def ask(node: str, query: str) -> str:
        for _ in range(ATTEMPTS - 1):
            try:
                return run_sql(node, query)
            except CommandError as exc:
                if RECOVERY_CONFLICT not in exc.stderr:
                    raise
        return run_sql(node, query)

    target = run_sql(primary, "select pg_current_wal_lsn()")
    replay = f"select pg_last_wal_replay_lsn() >= '{target}'::pg_lsn"

    def caught_up() -> bool:
        return all(ask(node, replay) == "t" for node in nodes if node != primary)

    poll(caught_up, holds, timeout=catch_up_seconds)  # compared as they are, caught up or not
    every_table = checksums_sql(tables)
    per_node: dict[str, dict[str, tuple[int, int]]] = {table: {} for table in tables}
    for node in nodes:  # one statement per node: each call is a `docker exec`
        for line in ask(node, every_table).splitlines():
            table, count, checksum = line.split("|")
            per_node[table][node] = (int(count), int(checksum))
    return [TableCheck(table, per_node[table]) for table in tables]
