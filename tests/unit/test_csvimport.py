"""The CSV import service without a database: row checks, the received file's refusals, the
batches a resumed import re-reads, and the HTTP API in front of a store that records calls."""

from __future__ import annotations

import http.client
import json
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from csvimport.api import ImportServer
from csvimport.errors import Refused
from csvimport.receive import body_chunks, receive, spool_path
from csvimport.rows import BAD_EMAIL, BAD_PHONE, UNKNOWN_STATUS, Lead, check_row, read_header
from csvimport.store import Pacing, Store
from csvimport.worker import Worker, batches

HEADER = "name,phone,email,status,source\n"
GOOD = "Ivanov Ivan,+7 912 345-67-89,ivan@example.ru,new,website\n"


def test_a_row_is_checked_field_by_field() -> None:
    header = read_header(["name", "phone", "email", "status", "source", "score"])
    lead = check_row(2, ["A B", "+7 (912) 345-67-89", "A@Example.ru", "Won", "", "7"], header)
    assert isinstance(lead, Lead)
    assert (lead.phone_key, lead.email_key, lead.status) == ("79123456789", "a@example.ru", "won")
    assert lead.source == "csv_import" and lead.score == 7
    assert check_row(3, ["A", "12", "", "new", "x", ""], header) == BAD_PHONE
    assert check_row(4, ["A", "", "not-an-email", "new", "x", ""], header) == BAD_EMAIL
    assert check_row(5, ["A", "", "", "maybe", "x", ""], header) == UNKNOWN_STATUS
    assert check_row(6, ["A", "", "", "new", "x", "101"], header) == "bad score"
    assert check_row(7, ["A", "", ""], header) == "expected 6 fields, found 3"


@pytest.mark.parametrize(
    ("columns", "code", "named"),
    [
        (["name", "phone", "email", "status", "source", "budget"], "unknown_column", "budget"),
        (["name", "phone", "status", "source"], "missing_column", "email"),
        (["name", "name", "phone", "email", "status", "source"], "repeated_column", "name"),
    ],
)
def test_a_bad_header_is_refused_naming_the_columns(
    columns: list[str], code: str, named: str
) -> None:
    with pytest.raises(Refused) as refused:
        read_header(columns)
    assert refused.value.code == code and named in refused.value.message


def received(spool: Path, data: bytes) -> Any:
    return receive(iter([data[:7], data[7:]]), spool, 1)


def test_a_received_file_is_named_by_its_content(tmp_path: Path) -> None:
    got = received(tmp_path, (HEADER + GOOD).encode())
    assert got.path == spool_path(tmp_path, 1, got.sha256) and got.path.exists()
    assert (got.lines, got.size) == (2, len(HEADER + GOOD))
    assert [p.name for p in tmp_path.iterdir()] == [got.path.name]


@pytest.mark.parametrize(
    ("data", "code"),
    [
        (b"", "empty"),
        (HEADER.encode(), "empty"),
        (b"\x89PNG\r\n\x1a\n\0\0\0", "not_csv"),
        ((HEADER + "Jos\xe9,,,new,web\n").encode("latin-1"), "encoding"),
        (b'{"leads": [1, 2]}\n', "unknown_column"),
    ],
)
def test_a_refused_file_leaves_nothing_behind(tmp_path: Path, data: bytes, code: str) -> None:
    with pytest.raises(Refused) as refused:
        received(tmp_path, data)
    assert refused.value.code == code
    assert list(tmp_path.iterdir()) == []


def test_a_bom_is_accepted(tmp_path: Path) -> None:
    assert received(tmp_path, ("\ufeff" + HEADER + GOOD).encode()).header.index["name"] == 0


def test_chunked_bodies_are_decoded_and_limited() -> None:
    import io

    body = io.BytesIO(b"5\r\nhello\r\n6;x=1\r\n world\r\n0\r\n\r\n")
    assert b"".join(body_chunks(body, None, True, 100)) == b"hello world"
    with pytest.raises(Refused, match="larger than the limit"):
        list(body_chunks(io.BytesIO(b"5\r\nhello\r\n0\r\n\r\n"), None, True, 4))
    with pytest.raises(Refused) as refused:
        list(body_chunks(io.BytesIO(b""), 10, False, 4))
    assert refused.value.status == 413


def test_batches_are_the_same_on_every_read(tmp_path: Path) -> None:
    """A resumed import skips batches by number, so numbering must not depend on the run."""
    rows = [f"P{i},+7912000{i:04d},p{i}@x.ru,{'new' if i % 3 else 'bogus'},web\n" for i in range(7)]
    path = tmp_path / "f.csv"
    path.write_text(HEADER + "".join(rows[:3]) + "\n" + "".join(rows[3:]))
    first = list(batches(path, 3))
    assert first == list(batches(path, 3))
    assert [(n, lines) for n, lines, _, _ in first] == [(0, (2, 4)), (1, (5, 8)), (2, (9, 9))]
    rejected = [line for _, _, _, rejects in first for line, _ in rejects]
    assert rejected == [2, 6, 9]  # rows 0, 3, 6; the blank line 5 is no row


def test_a_quoted_newline_keeps_the_line_numbers_of_the_file(tmp_path: Path) -> None:
    path = tmp_path / "f.csv"
    path.write_text(HEADER + '"Two\nLines",,,new,web\n' + "X,,,nope,web\n")
    [(_, _, leads, rejects)] = list(batches(path))
    assert leads[0].line == 2 and leads[0].full_name == "Two\nLines"
    assert rejects == [(4, UNKNOWN_STATUS)]


class FakeStore(Store):
    """Answers for the database: agencies 1 and 2 exist; registrations are recorded."""

    def __init__(self) -> None:
        super().__init__()
        self.registered: dict[tuple[int, str], int] = {}

    def agency_exists(self, agency_id: int) -> bool:
        return agency_id in (1, 2)

    def register(self, agency_id: int, sha256: str, size: int, lines: int) -> tuple[int, bool]:
        key = (agency_id, sha256)
        if key in self.registered:
            return self.registered[key], False
        self.registered[key] = len(self.registered) + 1
        return self.registered[key], True

    def summary(self, import_id: int, rejects: int) -> dict[str, Any] | None:
        if import_id not in self.registered.values():
            return None
        return {"id": import_id, "state": "staging", "rows_seen": 0, "rejected_rows": []}

    def imports(self, limit: int) -> list[dict[str, Any]]:
        return [{"id": i} for i in self.registered.values()]

    def ping(self) -> str:
        return "ok"


@pytest.fixture
def service(tmp_path: Path) -> Iterator[tuple[ImportServer, FakeStore]]:
    store = FakeStore()
    server = ImportServer(("127.0.0.1", 0), store, Worker(store, tmp_path), tmp_path, 10_000)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server, store
    server.shutdown()
    server.server_close()


def call(
    server: ImportServer,
    method: str,
    path: str,
    body: bytes | None = None,
    headers: Sequence[tuple[str, str]] = (),
) -> tuple[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", server.server_address[1], timeout=5)
    try:
        conn.request(method, path, body=body, headers=dict(headers))
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


def test_a_file_is_accepted_at_once_and_the_same_file_again_is_the_same_import(
    service: tuple[ImportServer, FakeStore],
) -> None:
    server, _ = service
    status, body = call(server, "POST", "/imports?agency_id=1", (HEADER + GOOD).encode())
    assert status == 202 and body["id"] == 1 and body["created"] is True
    status, again = call(server, "POST", "/imports?agency_id=1", (HEADER + GOOD).encode())
    assert status == 200 and again["id"] == 1 and again["created"] is False
    assert call(server, "GET", "/imports/1")[1]["state"] == "staging"
    assert call(server, "GET", "/imports")[1] == {"imports": [{"id": 1}]}
    assert call(server, "GET", "/imports/9")[0] == 404


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "code"),
    [
        ("/imports?agency_id=7", HEADER + GOOD, (), 404, "unknown_agency"),
        ("/imports", HEADER + GOOD, (), 400, "agency_id"),
        ("/imports?agency_id=1", "", (), 400, "empty"),
        ("/imports?agency_id=1", "x" * 20_000, (), 413, "too_large"),
        ("/imports?agency_id=1", "{}", (("Content-Type", "application/json"),), 415, "not_csv"),
        ("/imports?agency_id=1", "name,phone\nA,1\n", (), 400, "missing_column"),
    ],
)
def test_bad_input_is_a_json_error_and_nothing_is_registered(
    service: tuple[ImportServer, FakeStore],
    tmp_path: Path,
    path: str,
    body: str,
    headers: tuple[tuple[str, str], ...],
    status: int,
    code: str,
) -> None:
    server, store = service
    got, answer = call(server, "POST", path, body.encode(), headers)
    assert (got, answer["error"]) == (status, code)
    assert answer["message"]
    assert store.registered == {} and list(tmp_path.iterdir()) == []


def test_the_client_follows_an_import_through_a_failover_and_names_a_refusal(
    tmp_path: Path,
) -> None:
    import httpx

    from harness.clients.csvimport import CsvImportClient
    from harness.core.errors import HarnessError
    from harness.core.polling import Clock

    answers = iter([503, 200, 200])
    states = iter(["staging", "done"])

    def handle(request: httpx.Request) -> httpx.Response:
        if request.method == "POST":
            if request.url.params["agency_id"] == "9":
                body = {"error": "unknown_agency", "message": "agency 9 does not exist"}
                return httpx.Response(404, json=body)
            return httpx.Response(202, json={"id": 3, "created": True, "lines": 2})
        status = next(answers)
        if status == 503:
            return httpx.Response(503, json={"error": "database_unavailable", "message": "down"})
        return httpx.Response(200, json={"id": 3, "state": next(states), "rows_seen": 1})

    file = tmp_path / "f.csv"
    file.write_text(HEADER + GOOD)
    sent: list[int] = []
    client = CsvImportClient("http://csv", transport=httpx.MockTransport(handle))
    assert client.submit(file, 1, sent.append)["id"] == 3 and sum(sent) == file.stat().st_size
    seen: list[str] = []
    clock = Clock(now=lambda: 0.0, sleep=lambda _: None)
    assert client.wait(3, 60, lambda s: seen.append(s["state"]), clock)["state"] == "done"
    assert seen == ["staging", "done"]
    with pytest.raises(HarnessError, match="agency 9 does not exist"):
        client.submit(file, 9)


class LedgerStore(Store):
    """A ledger in memory: batch 0 staged before; the first stage of batch 2 loses its
    connection, as when the leader dies."""

    def __init__(self) -> None:
        super().__init__()
        self.ledger = {0}
        self.failed_once = False
        self.merged = 0

    def staged_batches(self, import_id: int) -> set[int]:
        return set(self.ledger)

    def stage(
        self,
        import_id: int,
        batch: int,
        lines: tuple[int, int],
        leads: Sequence[Lead],
        rejects: Sequence[tuple[int, str]],
    ) -> bool:
        import psycopg

        if batch == 2 and not self.failed_once:
            self.failed_once = True
            raise psycopg.OperationalError("server closed the connection unexpectedly")
        assert batch not in self.ledger, f"batch {batch} staged twice"
        self.ledger.add(batch)
        return True

    def mark_merging(self, import_id: int) -> None:
        pass

    def merge(self, import_id: int, agency_id: int) -> bool:
        self.merged += 1
        return True


def test_a_resumed_import_stages_only_what_the_ledger_lacks(tmp_path: Path) -> None:
    import psycopg

    from csvimport.store import Pending

    rows = "".join(f"P{i},,p{i}@x.ru,new,web\n" for i in range(10))
    sha = "abc"
    spool_path(tmp_path, 1, sha).write_text(HEADER + rows)
    store = LedgerStore()
    worker = Worker(store, tmp_path, batch=3)
    job = Pending(7, 1, sha, "staging")
    with pytest.raises(psycopg.OperationalError):
        worker.process(job)  # the run loop retries after a transient error
    assert store.ledger == {0, 1} and store.merged == 0
    worker.process(job)
    assert store.ledger == {0, 1, 2, 3} and store.merged == 1
    assert not spool_path(tmp_path, 1, sha).exists()  # done: the file is no longer needed


class ChunkCursor:
    """Answers the merge's chunk statement as a table of `valid` rows would, one chunk a call."""

    def __init__(self, valid: int) -> None:
        self.valid = valid
        self.after: list[int] = []
        self.answer: tuple[int, int | None] = (0, None)

    def execute(self, sql: str, params: dict[str, int]) -> ChunkCursor:
        self.after.append(params["after"])
        last = min(self.valid, params["after"] + params["rows"])
        count = last - params["after"]
        self.answer = (count, last if count else None)
        return self

    def fetchone(self) -> tuple[int, int | None]:
        return self.answer


@pytest.mark.parametrize(("valid", "chunks"), [(0, 1), (999, 1), (1000, 2), (2500, 3)])
def test_the_merge_moves_every_row_in_chunks_and_pauses_between_them(
    valid: int, chunks: int
) -> None:
    pauses: list[float] = []
    store = Store(pacing=Pacing(rows=1000, duty=0.25), sleep=pauses.append)
    cursor = ChunkCursor(valid)
    assert store.move_rows(cursor, 7, 1) == valid  # type: ignore[arg-type]
    assert cursor.after == [1000 * n for n in range(chunks)]  # each chunk after the last line
    assert len(pauses) == chunks - 1  # none after the last chunk
    assert Pacing(duty=0.25).pause(0.2) == pytest.approx(0.6) and Pacing(duty=1).pause(5) == 0


@pytest.mark.parametrize(("rows", "duty"), [(0, 0.5), (100, 0), (100, 1.5)])
def test_a_pacing_that_makes_no_sense_is_refused(rows: int, duty: float) -> None:
    with pytest.raises(ValueError, match="merge pacing needs"):
        Pacing(rows, duty)
