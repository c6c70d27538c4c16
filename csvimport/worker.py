"""The one worker: takes every unfinished import from the database and carries it to the end.

It keeps nothing in memory that the database does not also hold, so after a failover, a lost
connection or a restart of the service it simply looks again: staged batches are skipped by
the ledger, an interrupted merge was rolled back and runs again."""

from __future__ import annotations

import csv
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg

from csvimport.errors import Refused
from csvimport.receive import ENCODING, spool_path
from csvimport.rows import Lead, check_row, read_header
from csvimport.store import TRANSIENT, Pending, Store

BATCH = 5000  # rows per staging transaction
IDLE = 2.0  # s between looks when nothing is pending (a POST wakes the worker at once)
RETRY = 1.0  # s after a transient database error


def log(text: str) -> None:
    print(f"csv-import: {text}", file=sys.stderr, flush=True)


Batch = tuple[int, tuple[int, int], list[Lead], list[tuple[int, str]]]


def batches(path: Path, size: int = BATCH) -> Iterator[Batch]:
    """(number, (first line, last line), leads, rejects) for each `size` rows of the file."""
    with path.open(encoding=ENCODING, newline="") as text:
        reader = csv.reader(text)
        header = read_header(next(r for r in reader if r))
        number, count, first = 0, 0, reader.line_num + 1
        leads: list[Lead] = []
        rejects: list[tuple[int, str]] = []
        while True:
            start = reader.line_num + 1
            try:
                fields = next(reader)
            except StopIteration:
                break
            except csv.Error as exc:
                raise Refused(400, "not_csv", f"malformed CSV at line {start}: {exc}") from None
            if not fields:
                continue
            checked = check_row(start, fields, header)
            if isinstance(checked, Lead):
                leads.append(checked)
            else:
                rejects.append((start, checked))
            count += 1
            if count == size:
                yield number, (first, reader.line_num), leads, rejects
                number, count, first, leads, rejects = number + 1, 0, reader.line_num + 1, [], []
        if count:
            yield number, (first, reader.line_num), leads, rejects


class Worker(threading.Thread):
    def __init__(self, store: Store, spool: Path, batch: int = BATCH) -> None:
        super().__init__(name="import-worker", daemon=True)
        self.store = store
        self.spool = spool
        self.batch = batch
        self.wake = threading.Event()
        self.stopping = threading.Event()

    def stop(self) -> None:
        self.stopping.set()
        self.wake.set()

    def run(self) -> None:
        swept = False
        while not self.stopping.is_set():
            try:
                if not swept:
                    self.sweep()
                    swept = True
                pending = self.store.unfinished()
                for job in pending:
                    self.process(job)
            except TRANSIENT as exc:
                log(f"database unavailable, retrying: {str(exc).strip().splitlines()[0]}")
                time.sleep(RETRY)
                continue
            except psycopg.errors.UndefinedTable:
                log("the schema lacks app.imports: waiting for `harness migrate`")
                pending = []
            except Exception as exc:  # the worker must outlive a bug: log it, look again
                log(f"unexpected error, retrying: {exc!r}")
                time.sleep(RETRY)
                continue
            if not pending:
                self.wake.wait(IDLE)
                self.wake.clear()

    def process(self, job: Pending) -> None:
        path = spool_path(self.spool, job.agency_id, job.sha256)
        if not path.exists():
            self.store.fail(job.id, "the stored file is gone from the spool")
            log(f"import {job.id}: failed, its file is gone")
            return
        try:
            if job.state == "staging":
                self.stage(job, path)
                if self.stopping.is_set():
                    return
                self.store.mark_merging(job.id)
            started = time.monotonic()
            if self.store.merge(job.id, job.agency_id):
                log(f"import {job.id}: merged in {time.monotonic() - started:.1f} s")
        except Refused as exc:
            self.fail(job, exc.message)
        except psycopg.DatabaseError as exc:
            if isinstance(exc, TRANSIENT):
                raise
            self.fail(job, f"the database refused it: {str(exc).strip().splitlines()[0]}")
        path.unlink(missing_ok=True)

    def fail(self, job: Pending, why: str) -> None:
        self.store.fail(job.id, why)
        log(f"import {job.id}: failed, {why}")

    def stage(self, job: Pending, path: Path) -> None:
        done = self.store.staged_batches(job.id)
        for number, lines, leads, rejects in batches(path, self.batch):
            if self.stopping.is_set():
                return
            if number not in done:
                self.store.stage(job.id, number, lines, leads, rejects)

    def sweep(self) -> None:
        """Remove files of imports that finished while the service was not there to."""
        finished = self.store.finished_files()
        for path in self.spool.glob("*.csv"):
            agency, _, sha = path.stem.partition("-")
            if agency.isdigit() and (int(agency), sha) in finished:
                path.unlink(missing_ok=True)
