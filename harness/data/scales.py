"""How much CRM data each scale seeds: one table, read by the seeder and the command line."""

from __future__ import annotations

from harness.core.errors import ConfigError

MAX_ROWS = 50_000_000

# Rows per table at each scale. prod is what the plans name: 1M leads, 100K clients.
SCALES: dict[str, dict[str, int]] = {
    "small": {
        "agencies": 5,
        "agency_users": 25,
        "companies": 200,
        "leads": 5_000,
        "clients": 1_000,
        "services": 25,
        "staff": 25,
        "staff_schedules": 125,
        "bookings": 3_000,
        "dialog_contexts": 1_000,
        "reminders": 2_000,
        "messages": 10_000,
        "ai_agents": 10,
        "agent_memory": 2_000,
        "agent_subscriptions": 1_000,
        "ai_interactions": 2_000,
    },
    "prod": {
        "agencies": 50,
        "agency_users": 500,
        "companies": 20_000,
        "leads": 1_000_000,
        "clients": 100_000,
        "services": 500,
        "staff": 500,
        "staff_schedules": 2_500,
        "bookings": 200_000,
        "dialog_contexts": 100_000,
        "reminders": 150_000,
        "messages": 1_000_000,
        "ai_agents": 100,
        "agent_memory": 20_000,
        "agent_subscriptions": 50_000,
        "ai_interactions": 100_000,
    },
}
TABLES = tuple(SCALES["small"])


def resolve_counts(scale: str, overrides: dict[str, int] | None = None) -> dict[str, int]:
    if scale not in SCALES:
        raise ConfigError(f"unknown scale {scale!r}", f"choose one of: {', '.join(SCALES)}")
    counts = dict(SCALES[scale])
    for table, n in (overrides or {}).items():
        if table not in counts:
            raise ConfigError(f"unknown table {table!r}", f"choose from: {', '.join(TABLES)}")
        if not 0 < n <= MAX_ROWS:
            raise ConfigError(
                f"{table}={n} is out of range", f"give a count from 1 to {MAX_ROWS:,}"
            )
        counts[table] = n
    if counts["agencies"] > counts["ai_agents"] or counts["agencies"] > min(
        counts[t] for t in ("companies", "clients", "staff", "services", "leads")
    ):
        raise ConfigError(
            "every agency needs a company, lead, client, staff member, service and agent",
            "raise those counts or lower agencies",
        )
    return counts
