"""The application's writes during a move: writers inserting unique names through the
application endpoint the whole time, every attempt recorded as ack / fail / unknown (as
the chaos workload records its own). What the tests and the benchmark check against."""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from itertools import pairwise
from typing import Any

import psycopg

SOURCE_TAG = "migration-writes"  # leads.source of every row the writers insert
# The legacy name: a table on the source, a view on both sides after the cutover.
INSERT = (
    "insert into leads_ins_info (agency_id, full_name, status, source) "
    f"values (1, %s, 'new', '{SOURCE_TAG}')"
)
PAUSE_BETWEEN = 0.01  # s between one writer's attempts


@dataclass(frozen=True)
class Attempt:
    writer: int
    n: int
    started: float  # time.monotonic()
    ended: float
    outcome: str  # ack, fail, unknown

    @property
    def name(self) -> str:
        return f"mw-{self.writer}-{self.n}"


@dataclass
class Writes:
    attempts: list[Attempt] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)

    def acked(self, before: float = float("inf")) -> set[str]:
        return {a.name for a in self.attempts if a.outcome == "ack" and a.ended < before}

    def count(self, outcome: str) -> int:
        return sum(a.outcome == outcome for a in self.attempts)

    def largest_gap(self, low: float, high: float) -> float:
        """The longest time without an acknowledgement between two moments."""
        ends = sorted(
            a.ended for a in self.attempts if a.outcome == "ack" and low <= a.ended <= high
        )
        return max((b - a for a, b in pairwise([low, *ends, high])), default=0.0)

    def start(self, dsn: str, writers: int, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        self.threads = [
            threading.Thread(target=self.write, args=(dsn, i, deadline), daemon=True)
            for i in range(writers)
        ]
        for t in self.threads:
            t.start()

    def finish(self) -> None:
        self.stop.set()
        for t in self.threads:
            t.join(10)

    def write(self, dsn: str, index: int, deadline: float) -> None:
        """One writer, until stopped or its deadline; a broken connection is made anew."""
        n = 0
        conn: psycopg.Connection[Any] | None = None
        while not self.stop.is_set() and time.monotonic() < deadline:
            n += 1
            began = time.monotonic()
            try:
                if conn is None or conn.broken:
                    conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
                conn.execute(INSERT, (f"mw-{index}-{n}",))
                outcome = "ack"
            except psycopg.OperationalError:
                outcome = "unknown" if conn is not None and conn.broken else "fail"
            except psycopg.Error:
                outcome = "fail"
            self.attempts.append(Attempt(index, n, began, time.monotonic(), outcome))
            time.sleep(PAUSE_BETWEEN)
        if conn is not None:
            conn.close()


def names_on(dsn: str) -> set[str]:
    """The writers' rows a side holds, under the clean name (a view before the cutover on
    neither side: `leads` is the cluster's table, and the source's after the cutover)."""
    with psycopg.connect(dsn, autocommit=True) as conn:
        table = (
            "leads"
            if conn.execute("select to_regclass('public.leads')").fetchone() != (None,)
            else "leads_ins_info"
        )
        rows = conn.execute(f"select full_name from {table} where source = %s", (SOURCE_TAG,))
        return {r[0] for r in rows}
