"""The CSV import service on the real stack: rows land once, the same file again adds nothing,
rejected rows come back with their line and reason, bad input writes nothing, and an import
whose leader is killed half-way ends with every valid row exactly once."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from harness.chaos.imports import import_failures
from harness.clients.csvimport import CsvImportClient
from harness.core.errors import HarnessError
from harness.data.leadcsv import LeadFile, write_lead_csv
from harness.faults.controller import Faults
from harness.lab.topology import CSV_IMPORT
from harness.stack.lifecycle import Stack
from tests.integration.conftest import eventually
from tests.realstack import seed_small

pytestmark = [pytest.mark.integration, pytest.mark.timeout(600)]
AGENCY = 2
WAIT = 240.0


@pytest.fixture(scope="module")
def seeded(stack: Stack) -> Stack:
    seed_small(stack, reset=False)
    return stack


@pytest.fixture
def client(seeded: Stack) -> Iterator[CsvImportClient]:
    with CsvImportClient(seeded.lab.url(CSV_IMPORT)) as client:
        yield client


def query(stack: Stack, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    with psycopg.connect(stack.lab.dsn("rw"), autocommit=True) as conn:
        return conn.execute(sql, args).fetchall()


def lines_in_leads(stack: Stack, import_id: int) -> list[int]:
    rows = query(
        stack, "SELECT import_line FROM leads WHERE import_id = %s ORDER BY import_line", import_id
    )
    return [int(r[0]) for r in rows]


def assert_exactly_once(stack: Stack, summary: dict[str, Any], made: LeadFile) -> None:
    """Every valid line once in leads, in the agency; every invalid one rejected with its line."""
    assert import_failures(stack.lab.dsn("rw"), summary, made) == []
    agencies = query(
        stack, "SELECT DISTINCT agency_id FROM leads WHERE import_id = %s", summary["id"]
    )
    assert agencies == [(summary["agency_id"],)]
    assert (summary["imported"], summary["rejected"]) == (len(made.valid), len(made.rejected))
    assert summary["rows_seen"] == made.rows


def test_an_import_lands_once_and_the_same_file_again_adds_nothing(
    seeded: Stack, client: CsvImportClient, tmp_path: Path
) -> None:
    made = write_lead_csv(tmp_path / "leads.csv", 3000, seed=11, bad_every=40)
    submitted = client.submit(made.path, AGENCY)
    assert submitted["created"] is True and submitted["state"] in ("staging", "merging", "done")
    summary = client.wait(submitted["id"], WAIT)
    assert_exactly_once(seeded, summary, made)
    shown = {r["line"]: r["reason"] for r in summary["rejected_rows"]}
    assert shown == made.rejected and "duplicate of line 2" in shown.values()

    again = client.submit(made.path, AGENCY)
    assert (again["id"], again["created"], again["state"]) == (submitted["id"], False, "done")
    assert lines_in_leads(seeded, submitted["id"]) == made.valid
    assert submitted["id"] in [i["id"] for i in client.imports()]


@pytest.mark.parametrize(
    ("content", "agency", "message"),
    [
        ("name,phone\nA,+79120000000\n", AGENCY, "missing column(s): email, status, source"),
        ("name,phone,email,status,source,fax\nA,,,new,web,1\n", AGENCY, "unknown column(s)"),
        ("", AGENCY, "the file is empty"),
        ("name,phone,email,status,source\nA,,,new,web\n", 999_999, "agency 999999 does not exist"),
    ],
)
def test_bad_input_is_refused_with_its_reason_and_writes_nothing(
    seeded: Stack,
    client: CsvImportClient,
    tmp_path: Path,
    content: str,
    agency: int,
    message: str,
) -> None:
    before = query(seeded, "SELECT count(*) FROM app.imports")
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(HarnessError) as refused:
        client.submit(path, agency)
    assert message in refused.value.message
    assert query(seeded, "SELECT count(*) FROM app.imports") == before


def test_a_latin1_file_is_refused_by_the_cli_in_one_line(
    seeded: Stack, tmp_path: Path, test_env: dict[str, str]
) -> None:
    path = tmp_path / "latin1.csv"
    path.write_bytes("name,phone,email,status,source\nJos\xe9,,,new,web\n".encode("latin-1"))
    done = subprocess.run(
        [sys.executable, "-m", "harness", "import", str(path), "--agency", str(AGENCY)],
        env=test_env,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 1
    assert "not UTF-8" in done.stderr and "hint:" in done.stderr


def test_the_cli_imports_a_file(seeded: Stack, tmp_path: Path, test_env: dict[str, str]) -> None:
    made = write_lead_csv(tmp_path / "cli.csv", 500, seed=12, bad_every=100)
    done = subprocess.run(
        [sys.executable, "-m", "harness", "import", str(made.path), "--agency", str(AGENCY)],
        env=test_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert done.returncode == 0, done.stderr
    assert f"{len(made.valid)} imported, {len(made.rejected)} rejected" in done.stdout
    assert "line 101: bad phone" in done.stdout


def test_an_import_whose_leader_is_killed_midway_ends_with_each_row_once(
    seeded: Stack, client: CsvImportClient, tmp_path: Path
) -> None:
    made = write_lead_csv(tmp_path / "big.csv", 60_000, seed=13, bad_every=500)
    faults = Faults(seeded)
    submitted = client.submit(made.path, AGENCY)

    def under_way() -> bool:
        summary = client.get(submitted["id"])
        return summary is not None and summary["rows_seen"] > 0 and summary["state"] != "done"

    eventually(under_way, 60, "the import staging or merging")
    try:
        with faults.container_fault("kill", "leader"):
            summary = client.wait(submitted["id"], WAIT)
    finally:
        faults.heal_all()
    assert_exactly_once(seeded, summary, made)
    batches = query(
        seeded, "SELECT count(*) FROM app.import_batches WHERE import_id = %s", submitted["id"]
    )
    assert batches == [(12,)]  # 60,000 rows in batches of 5,000, each staged once
