"""The service's state, all in the database, so any instance after any failover finds it.

An import is a row of app.imports, unique per agency and content hash: the same file again
is the same import. Staging commits batch by batch, each batch's rows with its ledger row in
one transaction, so a resumed import knows exactly what is staged. The merge into leads, the
duplicate check and the state `done` commit in one transaction: an import is in leads
entirely or not at all (migration 0007). Inside that transaction the rows move in chunks with
a pause after each (`Pacing`): one statement of 100k rows wrote ~390 MB of WAL in 20 s, which
the synchronous standby had to take before any interactive commit behind it, while both
replicas replayed it; chunks with pauses let the interactive commits and reads in between."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import psycopg
from psycopg import errors
from psycopg.rows import dict_row

from csvimport.rows import Lead

# Errors after which the same step, retried, can succeed: the leader died or moved, the
# connection dropped, this session landed on a replica.
TRANSIENT: tuple[type[Exception], ...] = (
    psycopg.OperationalError,
    psycopg.InterfaceError,
    errors.ReadOnlySqlTransaction,
    errors.SerializationFailure,
    errors.DeadlockDetected,
)
STAGE_COLUMNS = (
    "import_id, line, full_name, phone, email, phone_key, email_key, status, source, score, "
    "created_at"
)
SUMMARY = (
    "id, agency_id, state, sha256, bytes, lines, rows_seen, imported, rejected, error, "
    "created_at, finished_at"
)


@dataclass(frozen=True)
class Pacing:
    """How the merge shares the cluster: `rows` leads per statement, then a pause so that the
    merge is busy only `duty` of its wall time (1.0: no pause)."""

    rows: int = 1000
    duty: float = 0.5

    def __post_init__(self) -> None:
        if self.rows < 1 or not 0 < self.duty <= 1:
            raise ValueError(f"merge pacing needs rows >= 1 and 0 < duty <= 1, not {self}")

    def pause(self, busy: float) -> float:
        """Seconds to wait after a chunk that took `busy` seconds."""
        return busy * (1 / self.duty - 1)


# One chunk of the merge: the next `rows` valid lines after the last one moved, into leads.
MERGE_CHUNK = """
WITH moved AS (
    INSERT INTO leads (agency_id, full_name, phone, email, status, source, score,
                       created_at, updated_at, import_id, import_line)
    SELECT %(agency)s, r.full_name, r.phone, r.email, r.status, r.source,
           coalesce(r.score, 0), coalesce(r.created_at, now()),
           coalesce(r.created_at, now()), r.import_id, r.line
    FROM app.import_rows r
    WHERE r.import_id = %(id)s AND r.line > %(after)s AND NOT EXISTS (
        SELECT FROM app.import_rejects j WHERE j.import_id = r.import_id AND j.line = r.line)
    ORDER BY r.line
    LIMIT %(rows)s
    RETURNING import_line)
SELECT count(*), max(import_line) FROM moved
"""


@dataclass(frozen=True)
class Pending:
    id: int
    agency_id: int
    sha256: str
    state: str


class Store:
    def __init__(
        self,
        conninfo: str = "",
        pacing: Pacing = Pacing(),
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.conninfo = conninfo  # "" : libpq's PG* environment variables
        self.pacing = pacing
        self.sleep = sleep

    def connect(self) -> psycopg.Connection[Any]:
        return psycopg.connect(self.conninfo, application_name="csv-import")

    def ping(self) -> str:
        with self.connect() as conn:
            row = conn.execute("SELECT to_regclass('app.imports') IS NOT NULL").fetchone()
        return "ok" if row and row[0] else "schema missing: run `harness migrate`"

    def agency_exists(self, agency_id: int) -> bool:
        """Under row-level security as the application sees it: its own agency's row."""
        with self.connect() as conn:
            conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency_id),))
            row = conn.execute(
                "SELECT EXISTS (SELECT FROM agencies WHERE id = %s)", (agency_id,)
            ).fetchone()
        return bool(row and row[0])

    def register(self, agency_id: int, sha256: str, size: int, lines: int) -> tuple[int, bool]:
        """The import of this file for this agency: (id, whether it is new)."""
        with self.connect() as conn:
            row = conn.execute(
                "INSERT INTO app.imports (agency_id, sha256, bytes, lines) VALUES (%s, %s, %s, %s) "
                "ON CONFLICT (agency_id, sha256) DO NOTHING RETURNING id",
                (agency_id, sha256, size, lines),
            ).fetchone()
            if row is not None:
                return int(row[0]), True
            row = conn.execute(
                "SELECT id FROM app.imports WHERE agency_id = %s AND sha256 = %s",
                (agency_id, sha256),
            ).fetchone()
        assert row is not None
        return int(row[0]), False

    def summary(self, import_id: int, rejects: int) -> dict[str, Any] | None:
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            found = cur.execute(
                f"SELECT {SUMMARY} FROM app.imports WHERE id = %s", (import_id,)
            ).fetchone()
            if found is None:
                return None
            cur.execute(
                "SELECT line, reason FROM app.import_rejects WHERE import_id = %s "
                "ORDER BY line LIMIT %s",
                (import_id, rejects),
            )
            found["rejected_rows"] = cur.fetchall()
        return found

    def imports(self, limit: int) -> list[dict[str, Any]]:
        with self.connect() as conn, conn.cursor(row_factory=dict_row) as cur:
            return cur.execute(
                f"SELECT {SUMMARY} FROM app.imports ORDER BY id DESC LIMIT %s", (limit,)
            ).fetchall()

    def unfinished(self) -> list[Pending]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT id, agency_id, sha256, state FROM app.imports "
                "WHERE state IN ('staging', 'merging') ORDER BY id"
            ).fetchall()
        return [Pending(*row) for row in rows]

    def staged_batches(self, import_id: int) -> set[int]:
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT batch FROM app.import_batches WHERE import_id = %s", (import_id,)
            ).fetchall()
        return {int(r[0]) for r in rows}

    def stage(
        self,
        import_id: int,
        batch: int,
        lines: tuple[int, int],
        leads: Sequence[Lead],
        rejects: Sequence[tuple[int, str]],
    ) -> bool:
        """One batch and its ledger row in one transaction; False if it was staged already.

        The ledger row goes first: a retry racing a commit whose answer was lost waits on
        its key and then fails on it, instead of staging the rows twice."""
        try:
            with self.connect() as conn, conn.cursor() as cur:
                cur.execute(
                    "INSERT INTO app.import_batches "
                    "(import_id, batch, first_line, last_line, rows, rejected) "
                    "VALUES (%s, %s, %s, %s, %s, %s)",
                    (import_id, batch, *lines, len(leads) + len(rejects), len(rejects)),
                )
                with cur.copy(f"COPY app.import_rows ({STAGE_COLUMNS}) FROM STDIN") as copy:
                    for lead in leads:
                        copy.write_row(
                            (
                                import_id,
                                lead.line,
                                lead.full_name,
                                lead.phone,
                                lead.email,
                                lead.phone_key,
                                lead.email_key,
                                lead.status,
                                lead.source,
                                lead.score,
                                lead.created_at,
                            )
                        )
                if rejects:
                    with cur.copy(
                        "COPY app.import_rejects (import_id, line, reason) FROM STDIN"
                    ) as copy:
                        for line, reason in rejects:
                            copy.write_row((import_id, line, reason))
                cur.execute(
                    "UPDATE app.imports SET rows_seen = rows_seen + %s, rejected = rejected + %s "
                    "WHERE id = %s",
                    (len(leads) + len(rejects), len(rejects), import_id),
                )
        except errors.UniqueViolation:
            return False
        return True

    def mark_merging(self, import_id: int) -> None:
        with self.connect() as conn:
            conn.execute(
                "UPDATE app.imports SET state = 'merging' WHERE id = %s AND state = 'staging'",
                (import_id,),
            )

    def merge(self, import_id: int, agency_id: int) -> bool:
        """Duplicates rejected, the rest into leads, staging emptied, state done: all in one
        transaction. False if another merge finished it first (it holds the row's lock)."""
        with self.connect() as conn, conn.cursor() as cur:
            state = cur.execute(
                "SELECT state FROM app.imports WHERE id = %s FOR UPDATE", (import_id,)
            ).fetchone()
            if state is None or state[0] != "merging":
                return False
            cur.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency_id),))
            cur.execute(
                """
                INSERT INTO app.import_rejects (import_id, line, reason)
                SELECT import_id, line,
                       'duplicate of line ' || least(nullif(by_phone, line), nullif(by_email, line))
                FROM (SELECT import_id, line,
                             CASE WHEN phone_key IS NOT NULL
                                  THEN min(line) OVER (PARTITION BY phone_key) END AS by_phone,
                             CASE WHEN email_key IS NOT NULL
                                  THEN min(line) OVER (PARTITION BY email_key) END AS by_email
                      FROM app.import_rows WHERE import_id = %(id)s) firsts
                WHERE by_phone < line OR by_email < line
                """,
                {"id": import_id},
            )
            duplicates = cur.rowcount
            imported = self.move_rows(cur, import_id, agency_id)
            cur.execute("DELETE FROM app.import_rows WHERE import_id = %s", (import_id,))
            cur.execute(
                "UPDATE app.imports SET state = 'done', imported = %s, "
                "rejected = rejected + %s, finished_at = now() WHERE id = %s",
                (imported, duplicates, import_id),
            )
        return True

    def move_rows(self, cur: psycopg.Cursor[Any], import_id: int, agency_id: int) -> int:
        """The import's valid rows into leads, chunk by chunk in line order, pausing after
        each chunk as the pacing says; the number moved."""
        moved, after = 0, 0
        while True:
            started = time.monotonic()
            count, last = cur.execute(
                MERGE_CHUNK,
                {"id": import_id, "agency": agency_id, "after": after, "rows": self.pacing.rows},
            ).fetchone() or (0, None)
            moved += int(count)
            if count < self.pacing.rows or last is None:
                return moved
            after = int(last)
            self.sleep(self.pacing.pause(time.monotonic() - started))

    def fail(self, import_id: int, error: str) -> None:
        """A file that cannot be imported: staged rows dropped, nothing in leads."""
        with self.connect() as conn:
            conn.execute("DELETE FROM app.import_rows WHERE import_id = %s", (import_id,))
            conn.execute(
                "UPDATE app.imports SET state = 'failed', error = %s, finished_at = now() "
                "WHERE id = %s AND state <> 'done'",
                (error, import_id),
            )

    def finished_files(self) -> set[tuple[int, str]]:
        """(agency, hash) of imports whose file is no longer needed."""
        with self.connect() as conn:
            rows = conn.execute(
                "SELECT agency_id, sha256 FROM app.imports WHERE state IN ('done', 'failed')"
            ).fetchall()
        return {(int(a), str(s)) for a, s in rows}
