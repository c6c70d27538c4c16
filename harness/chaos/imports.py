"""A CSV import through a scenario: submitted before the fault, staging or merging when the
fault hits, then checked: every valid line of the file in leads exactly once, every invalid one
rejected with its line and reason, the import done, and the fault did reach it (it was not done
before; a fault that cuts the service's link held it back until the heal)."""

from __future__ import annotations

import tempfile
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

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
PHASE_POLL = 0.1  # s: a 50k-row merge lasts a few seconds, the fault must land inside it

ImportPhase = Literal["staging", "merging"]


@dataclass(frozen=True)
class ImportPlan:
    """A CSV import through a scenario's fault."""

    rows: int
    fault_in: ImportPhase = "staging"  # the fault comes once the import is in this phase
    # The fault cuts the service from the database: nothing can finish the import before the
    # heal, so an import done by then means the fault missed the service's link.
    cut: bool = False


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


def reached(summary: dict[str, Any] | None, phase: ImportPhase) -> bool:
    """The import is in `phase` or past it."""
    if summary is None:
        return False
    state, seen = str(summary["state"]), int(summary["rows_seen"])
    return state != "staging" or (phase == "staging" and seen > 0)


def reach_failures(import_id: int, plan: ImportPlan, states: dict[str, str]) -> list[str]:
    """Whether the fault met the import at all, from its states at the fault and the heal."""
    if states.get("fault") == "done":
        return [f"import {import_id} was done before the fault: a larger import is needed"]
    if plan.cut and states.get("heal") == "done":
        return [
            f"import {import_id} finished while the fault held: the fault missed the "
            "service's database link"
        ]
    return []


class ImportAlongside:
    """One import for the length of a scenario (or of a load run)."""

    def __init__(self, stack: Stack, plan: ImportPlan, say: Say) -> None:
        self.stack = stack
        self.plan = plan
        self.say = say
        self.folder = tempfile.TemporaryDirectory(prefix="gardenlab-import-")
        self.client = CsvImportClient(stack.lab.url(CSV_IMPORT))
        self.made: LeadFile | None = None
        self.import_id = 0
        self.states: dict[str, str] = {}  # moment (fault, heal) -> the import's state then

    def prepare(self, seed: int) -> None:
        """Write the file (seconds of CPU for a large one: before any window that is timed)."""
        path = Path(self.folder.name) / "leads.csv"
        self.made = write_lead_csv(path, self.plan.rows, seed=seed, bad_every=BAD_EVERY)

    def start(self, seed: int) -> None:
        """Submit, and return once the import is in the plan's phase: it has staged its
        first batch, or begun its merge."""
        if self.made is None:
            self.prepare(seed)
        assert self.made is not None
        self.import_id = int(self.client.submit(self.made.path, AGENCY)["id"])

        def progress() -> dict[str, Any] | None:
            return self.client.get(self.import_id)

        phase = self.plan.fault_in
        started = poll(
            progress, lambda s: reached(s, phase), timeout=STARTED_TIMEOUT, interval=PHASE_POLL
        )
        if not started.held or started.value is None:
            raise HarnessError(
                f"import {self.import_id} was not {phase} within {STARTED_TIMEOUT:.0f} s",
                "`harness status` and the csv-import service's log",
            )
        self.say(
            f"import {self.import_id} of {self.plan.rows:,} rows: {started.value['state']}, "
            f"{started.value['rows_seen']:,} rows seen"
        )

    def mark(self, moment: str) -> None:
        """The import's state now, read from the database itself, not through the service
        (whose link the fault may be cutting)."""
        try:
            with psycopg.connect(
                self.stack.lab.dsn("rw", connect_timeout=2), autocommit=True
            ) as conn:
                row = conn.execute(
                    "SELECT state FROM app.imports WHERE id = %s", (self.import_id,)
                ).fetchone()
            self.states[moment] = str(row[0]) if row else "missing"
        except psycopg.Error:
            self.states[moment] = "unknown"  # the leader may be the fault

    def finish(self) -> dict[str, Any]:
        """Wait for the end of the import; its summary."""
        try:
            summary = self.client.wait(self.import_id, FINISHED_TIMEOUT)
        finally:
            self.client.close()
        self.say(
            f"import {self.import_id}: {summary['state']}, {summary['imported']:,} imported, "
            f"{summary['rejected']:,} rejected"
        )
        return summary

    def check(self, summary: dict[str, Any]) -> list[str]:
        """Each valid row once, each invalid one rejected with its line, the fault met it."""
        assert self.made is not None
        problems = import_failures(self.stack.lab.dsn("rw"), summary, self.made)
        return reach_failures(self.import_id, self.plan, self.states) + problems

    def failures(self) -> list[str]:
        try:
            return self.check(self.finish())
        except HarnessError as exc:
            return [exc.message]
        finally:
            self.folder.cleanup()
