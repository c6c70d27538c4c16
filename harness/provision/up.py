"""The whole lab up: the core stack proven ready, then the repository stanza, the schema, and
the profiles asked for (Supabase's services; the migration source with its endpoint)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from harness.backup.repository import ensure_stanza
from harness.core.progress import Say
from harness.data.schema import migrate
from harness.lab.presets import TimingPreset
from harness.lab.topology import SOURCE, SUPABASE
from harness.provision.source import SourceReport, start_source
from harness.stack.lifecycle import Stack, UpReport
from harness.stack.readiness import OnRound
from harness.stack.supabase import SupabaseReport, start_supabase


@dataclass
class LabReport:
    up: UpReport
    migrations: list[str] = field(default_factory=list)
    supabase: SupabaseReport | None = None
    source: SourceReport | None = None


def bring_up(
    stack: Stack,
    preset: TimingPreset,
    timeout: float,
    *,
    ensure_engine: Callable[[], None],
    on_build_line: Callable[[str], None] = lambda _: None,
    on_round: OnRound | None = None,
    supabase: bool = False,
    source_scale: str | None = None,
    say: Say = print,
) -> LabReport:
    """Start and prove the stack; create the stanza (the leader's WAL is archived only once
    the repository knows the cluster); apply the schema; start the profiles."""
    up = stack.up(
        preset,
        timeout,
        ensure_engine=ensure_engine,
        on_build_line=on_build_line,
        on_round=on_round,
        profiles=[p for p, on in ((SUPABASE, supabase), (SOURCE, source_scale)) if on],
    )
    report = LabReport(up)
    with up.phase("stanza"):
        ensure_stanza(stack)
    with up.phase("migrate"):
        report.migrations = migrate(stack.lab)
    if supabase:
        report.supabase = start_supabase(stack, say)
    if source_scale:
        with up.phase("source"):
            report.source = start_source(stack, source_scale, say)
    return report
