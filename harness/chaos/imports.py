"""A CSV import through a scenario: submitted before the fault, staging when the fault hits,
then checked: every valid line of the file in leads exactly once, every invalid one rejected
with its line and reason, and the import done."""

from __future__ import annotations

import tempfile
from collections import Counter
from pathlib import Path
from typing import Any

import psycopg

from harness.clients.csvimport import CsvImportClient
from harness.core.errors import HarnessError
from harness.core.polling import poll
from harness.core.progress import Say
from harness.data.leadcsv import LeadFile, write_lead_csv
from harness.lab.topology import CSV_IMPORT
from harness.stack.lifecycle import Stack

AGENCY = 1  # every seeded scale has it
BAD_EVERY = 200  # one row in 200 is rejected, for one of the four reasons
STARTED_TIMEOUT = 60.0
FINISHED_TIMEOUT = 900.0


def import_failures(dsn: str, summary: dict[str, Any], made: LeadFile) -> list[str]:
    """What differs from "each valid row exactly once, each invalid one rejected with its line"."""
    import_id = summary["id"]
    problems = []
    if summary["state"] != "done":
        problems.append(f"import {import_id} ended {summary['state']}: {summary.get('error')}")
    with psycopg.connect(dsn, autocommit=True) as conn:
        lines = Counter(
            int(r[0])
            for r in conn.execute(
                "SELECT import_line FROM leads WHERE import_id = %s", (import_id,)
            )
        )
        rejects = {
            int(line): str(reason)
            for line, reason in conn.execute(
                "SELECT line, reason FROM app.import_rejects WHERE import_id = %s", (import_id,)
            )
        }
    valid = set(made.valid)
    checks = {
        "valid lines missing from leads": sorted(valid - set(lines)),
        "lines in leads more than once": sorted(line for line, n in lines.items() if n > 1),
        "invalid lines in leads": sorted(set(lines) - valid),
        "invalid lines not rejected with their reason": sorted(
            line for line, reason in made.rejected.items() if rejects.get(line) != reason
        ),
        "valid lines rejected": sorted(set(rejects) - set(made.rejected)),
    }
    for what, found in checks.items():
        if found:
            problems.append(f"import {import_id}: {len(found)} {what} (first: {found[:5]})")
    return problems


class ImportAlongside:
    """One import of `rows` rows for the length of a scenario."""

    def __init__(self, stack: Stack, rows: int, say: Say) -> None:
        self.stack = stack
        self.rows = rows
        self.say = say
        self.folder = tempfile.TemporaryDirectory(prefix="gardenlab-import-")
        self.client = CsvImportClient(stack.lab.url(CSV_IMPORT))
        self.made: LeadFile | None = None
        self.import_id = 0

    def start(self, seed: int) -> None:
        """Submit, and return once the import has staged its first batch."""
        path = Path(self.folder.name) / "leads.csv"
        self.made = write_lead_csv(path, self.rows, seed=seed, bad_every=BAD_EVERY)
        self.import_id = int(self.client.submit(path, AGENCY)["id"])

        def progress() -> dict[str, Any] | None:
            return self.client.get(self.import_id)

        started = poll(
            progress, lambda s: s is not None and s["rows_seen"] > 0, timeout=STARTED_TIMEOUT
        )
        if not started.held:
            raise HarnessError(f"import {self.import_id} did not start within {STARTED_TIMEOUT} s")
        assert started.value is not None
        self.say(
            f"import {self.import_id} of {self.rows:,} rows: {started.value['state']}, "
            f"{started.value['rows_seen']:,} rows seen"
        )

    def failures(self) -> list[str]:
        assert self.made is not None
        try:
            summary = self.client.wait(self.import_id, FINISHED_TIMEOUT)
        except HarnessError as exc:
            return [exc.message]
        finally:
            self.client.close()
            self.folder.cleanup()
        self.say(
            f"import {self.import_id}: {summary['state']}, {summary['imported']:,} imported, "
            f"{summary['rejected']:,} rejected"
        )
        return import_failures(self.stack.lab.dsn("rw"), summary, self.made)
