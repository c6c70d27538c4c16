"""The workload a chaos scenario runs under, and what it records.

Writers insert unique ids through the read-write path and record each attempt's outcome:
- ack: the INSERT (autocommit: its commit) returned; the answering server is recorded;
- fail: the server refused it on a live connection (read-only, no connection): not committed;
- unknown: the connection broke before the outcome was known: it may or may not be committed.
A writer never cancels a statement: no statement_timeout, no client-side cancel; TCP
keepalives turn a dead connection into an error. Readers query the read-only port. A monitor
samples Patroni's leader and timeline and HAProxy's rw routing, to split the outage in layers.
Every loop stops at its deadline.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import httpx
import psycopg

from harness.clients.haproxy import fetch_backends
from harness.clients.patroni import PatroniClient
from harness.config.monitoring import LatencyFile
from harness.config.render import TEXTFILE_DIR
from harness.core.errors import HarnessError, first_line
from harness.lab.project import Lab
from harness.lab.topology import EndpointName

TABLE = "chaos_writes"
ID_STRIDE = 1_000_000_000  # writer w writes ids w * ID_STRIDE + n
Outcome = Literal["ack", "fail", "unknown"]


@dataclass(frozen=True)
class WriteTable:
    """What the writers insert into: the INSERT takes %(id)s and %(writer)s and returns the
    answering server's address; `create`, when set, makes the table afresh before the run;
    `ids` reads back the ids a side holds; the readers count `name`'s rows."""

    name: str
    insert: str
    ids: str
    create: tuple[str, ...] = ()

    def prepare(self, dsn: str) -> None:
        if self.create:
            with psycopg.connect(dsn, autocommit=True) as conn:
                for statement in self.create:
                    conn.execute(statement)

    def ids_on(self, dsn: str) -> set[int]:
        with psycopg.connect(dsn, autocommit=True) as conn:
            return {int(r[0]) for r in conn.execute(self.ids)}


CHAOS_WRITES = WriteTable(
    name=TABLE,
    insert=f"INSERT INTO {TABLE} (id, writer) VALUES (%(id)s, %(writer)s) "
    "RETURNING host(inet_server_addr())",
    ids=f"SELECT id FROM {TABLE}",
    create=(
        f"DROP TABLE IF EXISTS {TABLE}",
        f"CREATE TABLE {TABLE} (id bigint PRIMARY KEY, writer int NOT NULL, "
        "server inet DEFAULT inet_server_addr(), at timestamptz DEFAULT clock_timestamp())",
    ),
)


@dataclass(frozen=True)
class WorkloadTarget:
    """Where the workload goes: the lab's endpoints, or a gate target's."""

    write_dsn: str  # writers
    read_dsn: str  # readers
    setup_dsn: str  # the primary, to make the table and read it back
    patroni_urls: tuple[str, ...]  # the monitor's view of the leader
    stats_url: str | None = None  # HAProxy's stats, when it can be read
    textfile_dir: Path | None = None  # node_exporter's textfile directory: the lab's only
    patroni_ca: str | None = None  # the CA the REST API's certificates are verified with

    @classmethod
    def of_lab(cls, lab: Lab, endpoint: EndpointName = "rw") -> WorkloadTarget:
        return cls(
            lab.dsn(endpoint, connect_timeout=2, keepalives=True),
            lab.dsn("ro", connect_timeout=2, keepalives=True),
            lab.dsn("rw"),
            tuple(lab.rest_urls()),
            lab.url("stats", "/;csv"),
            lab.rendered_dir / TEXTFILE_DIR,
            lab.rest_ca,
        )


PUBLISH_INTERVAL = 2.0  # seconds; node_exporter reads the file at each 5 s scrape


@dataclass(frozen=True)
class Attempt:
    id: int
    writer: int
    started: float  # seconds since the workload's start
    ended: float
    outcome: Outcome
    server: str  # the address that acknowledged, or ""
    error: str


@dataclass(frozen=True)
class Sample:
    at: float
    leader: str  # Patroni's leader, "" when none
    timeline: int | None
    rw_backend: str  # the node HAProxy's rw listener has UP, "" when none


@dataclass
class Record:
    attempts: list[Attempt] = field(default_factory=list)
    reads: list[tuple[float, bool]] = field(default_factory=list)  # (at, succeeded)
    samples: list[Sample] = field(default_factory=list)
    marks: dict[str, float] = field(default_factory=dict)  # fault, heal, ... -> seconds
    epoch: float = 0.0  # wall-clock time of second 0, to line marks up with other records

    def wall(self, mark: str) -> float:
        """A mark as epoch seconds."""
        return self.epoch + self.marks[mark]

    def acked(self, before: float = float("inf")) -> set[int]:
        """The ids acknowledged before a moment (seconds since the start)."""
        return {a.id for a in self.attempts if a.outcome == "ack" and a.ended < before}

    def count(self, outcome: Outcome) -> int:
        return sum(a.outcome == outcome for a in self.attempts)

    def ack_gap(self, low: float, high: float) -> float:
        """The longest stretch without an acknowledgement between two moments."""
        ends = sorted(
            a.ended for a in self.attempts if a.outcome == "ack" and low <= a.ended <= high
        )
        return max((b - a for a, b in pairwise([low, *ends, high])), default=0.0)

    def errors_between(self, low: float, high: float) -> int:
        return sum(1 for a in self.attempts if a.outcome != "ack" and low <= a.ended <= high)

    def to_json(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "attempts": [a.__dict__ for a in self.attempts],
            "reads": self.reads,
            "samples": [s.__dict__ for s in self.samples],
            "marks": self.marks,
        }


class Workload:
    """Writers, readers and a monitor on threads; `with Workload(...) as w:` runs them."""

    def __init__(
        self,
        target: WorkloadTarget,
        *,
        writers: int = 4,
        readers: int = 1,
        rate: float = 25.0,  # writes per second per writer
        max_seconds: float = 300.0,
        table: WriteTable = CHAOS_WRITES,
    ) -> None:
        self.target = target
        self.table = table
        self.writers = writers
        self.readers = readers
        self.interval = 1.0 / rate
        self.max_seconds = max_seconds
        self.record = Record()
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._lock = threading.Lock()
        self._start = 0.0
        self.latency = LatencyFile(target.textfile_dir, "chaos") if target.textfile_dir else None

    def now(self) -> float:
        return time.monotonic() - self._start

    def mark(self, name: str) -> None:
        self.record.marks[name] = self.now()

    def __enter__(self) -> Workload:
        self.table.prepare(self.target.setup_dsn)
        self._start = time.monotonic()
        self.record.epoch = time.time()
        self._stop.clear()
        targets: list[Callable[[], None]] = [self._monitor]
        targets += [self._publisher] if self.latency else []
        targets += [self._writer_loop(w) for w in range(1, self.writers + 1)]
        targets += [self._reader] * self.readers
        for target in targets:
            thread = threading.Thread(target=target, daemon=True)
            thread.start()
            self._threads.append(thread)
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def stop(self, grace: float = 30.0) -> None:
        """Ask every loop to stop and wait; a writer inside a commit is never interrupted."""
        self._stop.set()
        deadline = time.monotonic() + grace
        for thread in self._threads:
            thread.join(max(0.0, deadline - time.monotonic()))
        self._threads = [t for t in self._threads if t.is_alive()]
        if self.latency:
            self.latency.remove()

    def _running(self) -> bool:
        return not self._stop.is_set() and self.now() < self.max_seconds

    # -- writers -----------------------------------------------------------------------------

    def _writer_loop(self, writer: int) -> Callable[[], None]:
        def loop() -> None:
            dsn = self.target.write_dsn
            conn: psycopg.Connection[Any] | None = None
            n = 0
            while self._running():
                n += 1
                write_id = writer * ID_STRIDE + n
                started = self.now()
                outcome: Outcome = "fail"
                server, error = "", ""
                try:
                    if conn is None or conn.closed or conn.broken:
                        if conn is not None:
                            conn.close()
                        conn = None  # a failed connect below is a plain failure
                        conn = psycopg.connect(dsn, autocommit=True, prepare_threshold=None)
                    row = conn.execute(
                        self.table.insert, {"id": write_id, "writer": writer}
                    ).fetchone()
                    outcome, server = "ack", str(row[0]) if row else ""
                    if self.latency:
                        self.latency.histogram.observe(self.now() - started)
                except psycopg.Error as exc:
                    error = first_line(exc)[:200]
                    # Broken mid-statement: the commit may have happened. Refused on a live
                    # connection, or never connected: it did not.
                    outcome = "unknown" if conn is not None and conn.broken else "fail"
                with self._lock:
                    self.record.attempts.append(
                        Attempt(write_id, writer, started, self.now(), outcome, server, error)
                    )
                if outcome != "ack":
                    time.sleep(0.05)  # no hot loop while the path is down
                else:
                    time.sleep(max(0.0, self.interval - (self.now() - started)))
            if conn is not None:
                conn.close()

        return loop

    # -- readers and the monitor -------------------------------------------------------------

    def _reader(self) -> None:
        dsn = self.target.read_dsn
        while self._running():
            ok = True
            try:
                with psycopg.connect(dsn, autocommit=True) as conn:
                    conn.execute(f"SELECT count(*) FROM {self.table.name}")
            except psycopg.Error:
                ok = False
            with self._lock:
                self.record.reads.append((self.now(), ok))
            time.sleep(0.2)

    def _publisher(self) -> None:
        assert self.latency is not None
        while self._running():
            self.latency.publish()
            self._stop.wait(PUBLISH_INTERVAL)

    def _monitor(self) -> None:
        stats = self.target.stats_url
        with PatroniClient(
            self.target.patroni_urls, timeout=0.5, ca_file=self.target.patroni_ca
        ) as patroni:
            while self._running():
                leader, timeline = "", None
                try:
                    current = patroni.cluster().leader
                    if current is not None:
                        leader, timeline = current.name, current.timeline
                except HarnessError:
                    pass
                try:
                    backends = fetch_backends(stats, timeout=0.5) if stats else []
                    up = [b.server for b in backends if b.listener == "rw" and b.up]
                except (httpx.HTTPError, ValueError):
                    up = []
                with self._lock:
                    self.record.samples.append(
                        Sample(self.now(), leader, timeline, up[0] if len(up) == 1 else "")
                    )
                time.sleep(0.2)
