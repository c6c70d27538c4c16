"""The migration files as yoyo reads them: a chain, each depending on the one before, and in the
upstream-contract migration every statement under a comment that names the upstream file it
follows."""

from __future__ import annotations

import re
from itertools import pairwise
from pathlib import Path

from yoyo.migrations import read_sql_migration

MIGRATIONS = Path(__file__).parents[2] / "migrations"
# repository:path, or a path in upstream's init scripts or services' migrations
UPSTREAM_FILE = re.compile(r"[\w./-]+\.(sql|ex|ts)\b")


def test_each_migration_depends_on_the_one_before() -> None:
    files = sorted(MIGRATIONS.glob("*.sql"))
    assert files
    for before, after in pairwise(files):
        directives, _, _ = read_sql_migration(str(after))
        assert directives.get("depends") == before.stem, after.name


def test_every_grant_of_the_supabase_contract_says_which_upstream_file_it_follows() -> None:
    """Paragraphs are separated by blank lines; each one holding SQL opens with its reason."""
    text = (MIGRATIONS / "0006_supabase_grants.sql").read_text()
    header, *paragraphs = text.split("\n\n")
    assert "-- depends: 0005_supabase" in header
    for paragraph in paragraphs:
        lines = paragraph.strip().splitlines()
        code = [line for line in lines if line and not line.startswith("--")]
        if not code:
            continue
        comment = " ".join(line for line in lines if line.startswith("--"))
        assert lines[0].startswith("--"), f"no reason before: {code[0]}"
        assert UPSTREAM_FILE.search(comment), f"no upstream file named before: {code[0]}"
