"""The migration's source on the lab (Compose profile `source`): a stand-in for the hosted
Supabase database, and the application endpoint in front of it.

The source gets the CRM's own migrations (so its tables are the cluster's, column for
column), Supabase's internals (compose/source/supabase.sql), the project's deterministic
rows under the clean names, then the legacy names and the traps (compose/source/legacy.sql).
Seeding before the rename lets the one generator serve both sides.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import psycopg
from psycopg import sql

from harness.config.render import endpoint_ini
from harness.core.errors import HarnessError, first_line
from harness.core.progress import Say, silent
from harness.data.crmdata import CrmData
from harness.data.scales import resolve_counts
from harness.data.seed import seed
from harness.lab.project import ROLE_SECRETS, Lab
from harness.lab.topology import APP_ENDPOINT, PG_PORT, SOURCE, SOURCE_SERVICE
from harness.stack.lifecycle import Stack
from harness.stack.readiness import SqlAnswers, wait_for

SOURCE_READY_TIMEOUT = 60.0
SEED = 42
LEGACY_MARK = "public.leads_ins_info"  # present once the source is fully prepared


@dataclass(frozen=True)
class SourceReport:
    outcome: str  # "prepared" or "unchanged"
    scale: str
    rows: int


def endpoint_file(lab: Lab) -> Path:
    return lab.rendered_dir / "endpoint.ini"


def endpoint_upstream(lab: Lab) -> tuple[str, int] | None:
    """Where the endpoint's rendered file points now (None before its first start): the
    upstream is state a cutover or rollback set, the rest of the file is the template's."""
    path = endpoint_file(lab)
    if not path.exists():
        return None
    found = re.search(r"^\S+ = host=(\S+) port=(\d+)$", path.read_text(), re.MULTILINE)
    return (found[1], int(found[2])) if found else None


def write_endpoint(lab: Lab, host: str, port: int) -> None:
    """Point the endpoint's rendered file at host:port (in place: the bind mount follows)."""
    path = endpoint_file(lab)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(endpoint_ini(host, port))


def source_sql(lab: Lab, name: str) -> str:
    return (lab.compose_dir / "source" / name).read_text()


def migration_files(lab: Lab) -> list[Path]:
    """The CRM's migrations in order, as yoyo would apply them (no rollbacks among them)."""
    return sorted(p for p in (lab.root / "migrations").glob("*.sql") if ".rollback" not in p.name)


def prepared(dsn: str) -> bool:
    with psycopg.connect(dsn, autocommit=True) as conn:
        row = conn.execute("select to_regclass(%s) is not null", (LEGACY_MARK,)).fetchone()
    return bool(row and row[0])


def prepare_source(lab: Lab, scale: str, say: Say = silent) -> SourceReport:
    """Schema, internals, rows, legacy names and traps on an empty source; an already
    prepared one is left as it is (its data may be mid-rehearsal)."""
    dsn = lab.dsn("source")
    counts = resolve_counts(scale)
    if prepared(dsn):
        return SourceReport("unchanged", scale, 0)
    with psycopg.connect(dsn, autocommit=True) as conn:
        if conn.execute("select to_regclass('public.leads') is null").fetchone() == (True,):
            for path in migration_files(lab):
                conn.execute(path.read_text().encode())
            conn.execute(source_sql(lab, "supabase.sql").encode())
        for role, key in ROLE_SECRETS.items():
            if role != "postgres":
                conn.execute(
                    sql.SQL("ALTER ROLE {} LOGIN PASSWORD {}").format(
                        sql.Identifier(role), sql.Literal(lab.secret(key))
                    )
                )
    say(f"seeding the source ({scale})")
    seed(dsn, CrmData(SEED, counts), reset=True, force=True)
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute(source_sql(lab, "legacy.sql").encode())
        conn.execute("ANALYZE")
    return SourceReport("prepared", scale, sum(counts.values()))


def start_source(stack: Stack, scale: str = "small", say: Say = silent) -> SourceReport:
    """Start the source and the endpoint (pointed at the source unless a cutover repointed
    it), wait until both answer, and prepare the source."""
    lab = stack.lab
    # Rendered again each start, keeping its upstream, so a file an older template wrote
    # (one without TLS, say) never outlives the template.
    write_endpoint(lab, *(endpoint_upstream(lab) or (SOURCE_SERVICE, PG_PORT)))
    stack.compose([SOURCE]).up([SOURCE_SERVICE, APP_ENDPOINT], dependencies=False)
    checks = [
        SqlAnswers("migration source answering", lab.dsn("source", connect_timeout=2), False),
        SqlAnswers("application endpoint answering", lab.dsn("endpoint", connect_timeout=2), None),
    ]
    wait_for(checks, SOURCE_READY_TIMEOUT, log_tail=stack.log_tail)
    try:
        return prepare_source(lab, scale, say)
    except psycopg.Error as exc:
        raise HarnessError(
            f"preparing the migration source failed: {first_line(exc)}",
            "start it afresh: `harness down --volumes`, then `harness up --source`",
        ) from None


def remove_source(stack: Stack) -> None:
    """The source's container and data gone: the next start prepares it afresh."""
    doomed = [c.name for c in stack.containers() if c.service == SOURCE_SERVICE]
    if doomed:
        stack.runtime.act("stop", doomed)
        stack.runtime.remove(containers=doomed)
    stack.remove_volumes([SOURCE_SERVICE])


def fresh_source(stack: Stack, scale: str = "small", say: Say = silent) -> SourceReport:
    """A source as `harness up --source` first makes it (a rehearsal leaves the source
    renamed and written to)."""
    remove_source(stack)
    return start_source(stack, scale, say)
