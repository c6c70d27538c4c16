"""The generator alone: deterministic bytes, exact counts, keys inside one agency."""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import pytest

from harness.core.errors import ConfigError, HarnessError
from harness.data import seed as seed_module
from harness.data.columns import COLUMNS
from harness.data.crmdata import CrmData
from harness.data.scales import TABLES, resolve_counts

COUNTS = resolve_counts("small", {"leads": 1500, "messages": 2000})


def digest(data: CrmData) -> str:
    h = hashlib.sha256()
    for table in TABLES:
        for chunk in data.rows(table):
            h.update(chunk.encode())
    return h.hexdigest()


def rows(data: CrmData, table: str) -> list[list[str]]:
    return [line.split("\t") for chunk in data.rows(table) for line in chunk.splitlines()]


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    assert digest(CrmData(7, COUNTS)) == digest(CrmData(7, COUNTS))
    assert digest(CrmData(7, COUNTS)) != digest(CrmData(8, COUNTS))


def test_every_table_has_its_count_and_its_columns() -> None:
    data = CrmData(1, COUNTS)
    for table in TABLES:
        table_rows = rows(data, table)
        assert len(table_rows) == COUNTS[table], table
        assert {len(r) for r in table_rows} == {len(COLUMNS[table])}, table
        assert [int(r[0]) for r in table_rows] == list(range(1, COUNTS[table] + 1))


def test_foreign_keys_point_inside_the_same_agency() -> None:
    data = CrmData(3, COUNTS)
    owner = {t: {int(r[0]): int(r[1]) for r in rows(data, t)} for t in ("companies", "clients")}
    for lead in rows(data, "leads"):
        if lead[2] != r"\N":
            assert owner["companies"][int(lead[2])] == int(lead[1])
    for booking in rows(data, "bookings"):
        assert owner["clients"][int(booking[2])] == int(booking[1])


def test_agencies_are_skewed_and_each_owns_rows_of_every_table() -> None:
    data = CrmData(5, COUNTS)
    leads = np.bincount([int(r[1]) for r in rows(data, "leads")])
    assert leads[1] > 2 * leads[COUNTS["agencies"]]
    for table in TABLES[1:]:
        assert set(data.owner_of(table)) == set(range(1, COUNTS["agencies"] + 1)), table


def test_values_look_real() -> None:
    lead = rows(CrmData(9, COUNTS), "leads")[0]
    assert len(lead[3].split()) >= 2  # a full name
    assert lead[4] == r"\N" or lead[4].startswith("+7 9")
    assert lead[6] in {"new", "contacted", "qualified", "won", "lost"}


@pytest.mark.parametrize(
    ("scale", "overrides", "message"),
    [
        ("huge", {}, "unknown scale"),
        ("small", {"lead": 5}, "unknown table"),
        ("small", {"leads": -1}, "out of range"),
        ("small", {"leads": 10**12}, "out of range"),
        ("small", {"agencies": 500}, "every agency needs"),
    ],
)
def test_bad_counts_are_refused(scale: str, overrides: dict[str, int], message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        resolve_counts(scale, overrides)


class FakeConnection:
    def __init__(self, answer: tuple[Any, ...]) -> None:
        self.answer = answer

    def execute(self, *_: object) -> FakeConnection:
        return self

    def fetchone(self) -> tuple[Any, ...]:
        return self.answer

    def close(self) -> None:
        pass


@pytest.mark.parametrize(
    ("answer", "error", "message"),
    [
        (("production", False, True), ConfigError, "not the lab's"),
        (("gardenlab", True, True), HarnessError, "read-only"),
        (("gardenlab", False, False), HarnessError, "schema is missing"),
    ],
)
def test_seeding_refuses_a_target_it_should_not_touch(
    monkeypatch: pytest.MonkeyPatch, answer: tuple[Any, ...], error: type, message: str
) -> None:
    monkeypatch.setattr("psycopg.connect", lambda *a, **k: FakeConnection(answer))
    with pytest.raises(error, match=message):
        seed_module.connect_primary("host=x", force=False)


def test_force_allows_another_cluster(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeConnection(("production", False, True))
    monkeypatch.setattr("psycopg.connect", lambda *a, **k: fake)
    connection: object = seed_module.connect_primary("host=x", force=True)
    assert connection is fake


def test_prod_scale_is_what_the_plans_name() -> None:
    prod = resolve_counts("prod")
    assert prod["leads"] == 1_000_000 and prod["clients"] == 100_000
    assert all(prod[t] > resolve_counts("small")[t] for t in TABLES if t != "agencies")
