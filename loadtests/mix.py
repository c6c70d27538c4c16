"""The CRM workload mix: what an agency's staff do all day, as SQL against the seeded schema.

Kept free of Locust so the harness can validate thresholds against the request names and
document the mix without importing gevent. Every request runs as the tenant (RLS by the
transaction-local `app.agency_id`), so it works behind PgBouncer's transaction pooling.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg

Conn = psycopg.Connection[Any]

# The seeded data spans two fixed years; dashboards look at a 30-day window inside it.
DATA_START = datetime(2024, 12, 1, tzinfo=UTC)
DATA_DAYS = 2 * 365
VECTOR_DIMENSIONS = 64  # agent_memory.embedding


@dataclass
class Agency:
    """What one tenant's users pick from; drawn once per load process from the seeded data."""

    id: int
    clients: list[tuple[int, str]] = field(default_factory=list)  # (id, phone)
    staff: list[int] = field(default_factory=list)
    services: list[int] = field(default_factory=list)
    agents: list[int] = field(default_factory=list)

    @property
    def complete(self) -> bool:
        return all((self.clients, self.staff, self.services, self.agents))


@dataclass(frozen=True)
class Samples:
    agencies: list[Agency]
    search_terms: list[str]  # typed into the search box: a surname and a first name's start


def load_samples(conn: Conn, per_table: int = 20_000) -> Samples:
    """Ids, phones and name beginnings per agency, read once with a role that sees all tenants."""
    agencies: dict[int, Agency] = {}

    def rows(query: str) -> list[tuple[Any, ...]]:
        return conn.execute(query, {"n": per_table}).fetchall()

    for (agency_id,) in rows("SELECT id FROM agencies ORDER BY id"):
        agencies[agency_id] = Agency(agency_id)
    for agency_id, client_id, phone in rows(
        "SELECT agency_id, id, phone FROM clients WHERE phone IS NOT NULL ORDER BY id LIMIT %(n)s"
    ):
        agencies[agency_id].clients.append((client_id, phone))
    for table, attribute in (("staff", "staff"), ("services", "services"), ("ai_agents", "agents")):
        for agency_id, row_id in rows(f"SELECT agency_id, id FROM {table} ORDER BY id LIMIT %(n)s"):
            getattr(agencies[agency_id], attribute).append(row_id)
    terms = [
        str(term)
        for (term,) in rows(
            "SELECT DISTINCT split_part(full_name, ' ', 1) || ' ' || "
            "left(split_part(full_name, ' ', 2), 3) FROM "
            "(SELECT full_name FROM leads ORDER BY id LIMIT %(n)s) AS s"
        )
    ]
    usable = [a for a in agencies.values() if a.complete]
    return Samples(usable, terms)


def as_tenant(conn: Conn, agency: Agency) -> None:
    """Scope the current transaction to the agency; RLS does the rest."""
    conn.execute("SELECT set_config('app.agency_id', %s, true)", (str(agency.id),))


# -- the requests ---------------------------------------------------------------------------


def search_leads(conn: Conn, agency: Agency, samples: Samples, rnd: random.Random) -> int:
    """The search box: the agency's newest leads whose name contains what was typed.

    Through app.search_leads, which can use the trigram index under RLS (migration 0004).
    """
    term = rnd.choice(samples.search_terms)
    return len(conn.execute("SELECT * FROM app.search_leads(%s)", (term,)).fetchall())


def client_by_phone(conn: Conn, agency: Agency, samples: Samples, rnd: random.Random) -> int:
    """An incoming call: who is this?"""
    _, phone = rnd.choice(agency.clients)
    return len(
        conn.execute(
            "SELECT id, full_name, email, contact FROM clients WHERE phone = %s", (phone,)
        ).fetchall()
    )


def dashboard(conn: Conn, agency: Agency, samples: Samples, rnd: random.Random) -> int:
    """The agency's landing page: 30 days of leads, wins, bookings and messages."""
    since = DATA_START + timedelta(days=rnd.randrange(DATA_DAYS - 30))
    row = conn.execute(
        """SELECT
            (SELECT count(*) FROM leads WHERE created_at >= %(since)s
                AND created_at < %(since)s + interval '30 days'),
            (SELECT count(*) FROM leads WHERE status = 'won' AND created_at >= %(since)s
                AND created_at < %(since)s + interval '30 days'),
            (SELECT count(*) FROM bookings WHERE starts_at >= %(since)s
                AND starts_at < %(since)s + interval '30 days'),
            (SELECT count(*) FROM messages WHERE created_at >= %(since)s
                AND created_at < %(since)s + interval '30 days')""",
        {"since": since},
    ).fetchone()
    return len(row or ())


def memory_search(conn: Conn, agency: Agency, samples: Samples, rnd: random.Random) -> int:
    """An AI agent recalls what it knows: nearest neighbours by cosine distance (HNSW)."""
    vector = "[" + ",".join(f"{rnd.gauss(0, 1):.4f}" for _ in range(VECTOR_DIMENSIONS)) + "]"
    return len(
        conn.execute(
            "SELECT id, content FROM agent_memory ORDER BY embedding <=> %s::vector LIMIT 5",
            (vector,),
        ).fetchall()
    )


def create_lead(conn: Conn, agency: Agency, samples: Samples, rnd: random.Random) -> int:
    """A form on the agency's site posts a new lead."""
    n = rnd.randrange(10**7)
    conn.execute(
        "INSERT INTO leads (agency_id, full_name, phone, email, status, source, info) "
        "VALUES (%s, %s, %s, %s, 'new', 'website', %s) RETURNING id",
        (
            agency.id,
            f"{rnd.choice(samples.search_terms)} Load {n}",
            f"+7 999 {n // 10_000:03d}-{n // 100 % 100:02d}-{n % 100:02d}",
            f"load{n}@example.org",
            '{"product": "osago", "budget": 50000}',
        ),
    ).fetchone()
    return 1


def book_appointment(conn: Conn, agency: Agency, samples: Samples, rnd: random.Random) -> int:
    """Book a slot, then show the client's bookings: read-after-write, so on the primary."""
    client_id, _ = rnd.choice(agency.clients)
    starts = datetime.now(UTC) + timedelta(days=rnd.randrange(1, 60), hours=rnd.randrange(24))
    conn.execute(
        "INSERT INTO bookings (agency_id, client_id, staff_id, service_id, starts_at, ends_at, "
        "status) VALUES (%s, %s, %s, %s, %s, %s, 'booked')",
        (
            agency.id,
            client_id,
            rnd.choice(agency.staff),
            rnd.choice(agency.services),
            starts,
            starts + timedelta(hours=1),
        ),
    )
    return len(
        conn.execute(
            "SELECT id, starts_at, status FROM bookings WHERE client_id = %s "
            "ORDER BY starts_at DESC LIMIT 10",
            (client_id,),
        ).fetchall()
    )


def add_messages(conn: Conn, agency: Agency, samples: Samples, rnd: random.Random) -> int:
    """A chat exchange: the client writes, the agent answers."""
    client_id, _ = rnd.choice(agency.clients)
    with conn.cursor() as cur:
        cur.executemany(
            "INSERT INTO messages (agency_id, client_id, direction, channel, body, created_at) "
            "VALUES (%s, %s, %s, 'whatsapp', %s, now())",
            [
                (agency.id, client_id, "in", "Здравствуйте, хочу продлить полис"),
                (agency.id, client_id, "out", "Добрый день! Подготовлю расчёт сегодня."),
            ],
        )
    return 2


Action = Callable[[Conn, Agency, Samples, random.Random], int]


@dataclass(frozen=True)
class Request:
    name: str  # what Locust reports it as
    action: Action
    weight: int  # relative frequency in the mix
    primary: bool  # writes and read-after-write go to the primary; stale-tolerant reads do not


MIX: tuple[Request, ...] = (
    Request("search_leads", search_leads, 5, primary=False),
    Request("client_by_phone", client_by_phone, 5, primary=False),
    Request("dashboard", dashboard, 2, primary=False),
    Request("memory_search", memory_search, 2, primary=False),
    Request("create_lead", create_lead, 2, primary=True),
    Request("book_appointment", book_appointment, 2, primary=True),
    Request("add_messages", add_messages, 3, primary=True),
)
REQUEST_NAMES = tuple(r.name for r in MIX)
