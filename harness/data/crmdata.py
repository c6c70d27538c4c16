"""Deterministic, realistic CRM rows: the same seed gives the same bytes on every machine.

Calling Faker per row manages ~5k rows/s, so Faker only draws pools of values (names,
streets, companies, sentences) from a seeded instance; rows are assembled from the pools
with numpy, one independent random stream per table. Rows come out as COPY text (TSV),
ids explicit, every foreign key pointing inside the same agency.

Determinism holds for the pinned Faker and numpy versions (see pyproject.toml).
"""

from __future__ import annotations

import json
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import lru_cache

import numpy as np
from faker import Faker

from harness.data.columns import COLUMNS

LOCALES = ("ru_RU", "en_US")  # the CRM's customers, and the foreign ones
POOL = 4000
EPOCH = datetime(2024, 12, 1, tzinfo=UTC).timestamp()  # data spans two fixed years
SPAN = 2 * 365 * 86400
CHUNK = 100_000
Columns = list[list[str]]  # one list of COPY-ready values per column


@dataclass(frozen=True)
class Pools:
    """Values drawn once from Faker; rows pick from them."""

    first_m: list[str]
    first_f: list[str]
    last_m: list[str]
    last_f: list[str]
    middle_m: list[str]
    middle_f: list[str]
    companies: list[str]
    streets: list[str]
    cities: list[str]
    domains: list[str]
    users: list[str]
    jobs: list[str]
    sentences: list[str]

    @classmethod
    def draw(cls, seed: int) -> Pools:
        ru, en = (Faker(loc) for loc in LOCALES)
        ru.seed_instance(seed)
        en.seed_instance(seed + 1)

        def many(f: Callable[[], str], n: int = POOL) -> list[str]:
            return [f() for _ in range(n)]

        return cls(
            first_m=many(ru.first_name_male, 400) + many(en.first_name_male, 100),
            first_f=many(ru.first_name_female, 400) + many(en.first_name_female, 100),
            last_m=many(ru.last_name_male, 1500) + many(en.last_name, 300),
            last_f=many(ru.last_name_female, 1500) + many(en.last_name, 300),
            middle_m=many(ru.middle_name_male, 300),
            middle_f=many(ru.middle_name_female, 300),
            companies=many(ru.company, 3000) + many(en.company, 1000),
            streets=many(ru.street_address),
            cities=many(ru.city, 500),
            domains=many(ru.free_email_domain, 30) + many(en.domain_name, 70),
            users=many(en.user_name),
            jobs=many(ru.job, 300),
            sentences=many(lambda: ru.sentence(nb_words=10)),
        )


@lru_cache(maxsize=4)
def draw_pools(seed: int) -> Pools:
    return Pools.draw(seed)


def rng_for(seed: int, table: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(table.encode())])


def agency_weights(n: int) -> np.ndarray:
    """A Zipf-like skew: a few big agencies, a long tail of small ones."""
    w: np.ndarray = 1.0 / np.arange(1, n + 1) ** 1.1
    normalised: np.ndarray = w / w.sum()
    return normalised


def timestamps(rng: np.random.Generator, n: int) -> np.ndarray:
    """Seconds over the two-year window, denser towards the recent end (a growing business)."""
    return EPOCH + np.sqrt(rng.random(n)) * SPAN


def iso(ts: np.ndarray) -> list[str]:
    return [datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S+00") for t in ts.tolist()]


def choose(rng: np.random.Generator, values: list[str], n: int) -> list[str]:
    index = rng.integers(0, len(values), n)
    return [values[i] for i in index.tolist()]


def weighted(rng: np.random.Generator, options: dict[str, float], n: int) -> list[str]:
    keys = list(options)
    p = np.array(list(options.values()), dtype=float)
    index = rng.choice(len(keys), size=n, p=p / p.sum())
    return [keys[i] for i in index.tolist()]


class CrmData:
    """All rows of one seed and scale, generated table by table in COPY chunks."""

    def __init__(self, seed: int, counts: dict[str, int]) -> None:
        self.seed = seed
        self.counts = counts
        self._owners: dict[str, np.ndarray] = {}  # deterministic, so a race only recomputes

    @property
    def pools(self) -> Pools:
        return draw_pools(self.seed)

    def owners(self, table: str) -> np.ndarray:
        """agency_id of each row of a table: every agency owns one, the rest are skewed."""
        n, agencies = self.counts[table], self.counts["agencies"]
        rng = rng_for(self.seed, f"{table}.agency")
        head = np.arange(1, min(n, agencies) + 1)
        tail = rng.choice(agencies, size=max(0, n - agencies), p=agency_weights(agencies)) + 1
        owners: np.ndarray = np.concatenate([head, tail]).astype(np.int64)
        return owners

    def owner_of(self, table: str) -> np.ndarray:
        if table not in self._owners:
            self._owners[table] = self.owners(table)
        return self._owners[table]

    def same_agency(self, parent: str, child_agency: np.ndarray, key: str) -> np.ndarray:
        """For each child row, the id of a random parent row owned by the same agency."""
        owners = self.owner_of(parent)
        order = np.argsort(owners, kind="stable")
        counts = np.bincount(owners, minlength=self.counts["agencies"] + 1)
        starts = np.concatenate([[0], np.cumsum(counts)[:-1]])
        rng = rng_for(self.seed, f"{key}.pick")
        offset = (rng.random(len(child_agency)) * counts[child_agency]).astype(np.int64)
        ids: np.ndarray = order[starts[child_agency] + offset] + 1  # ids: 1-based row numbers
        return ids

    def rows(self, table: str) -> Iterator[str]:
        """The table's COPY text in chunks of up to CHUNK rows."""
        n = self.counts[table]
        agency = self.owner_of(table) if table != "agencies" else np.arange(1, n + 1)
        for start in range(0, n, CHUNK):
            stop = min(n, start + CHUNK)
            rng = rng_for(self.seed, f"{table}.{start}")
            ids = np.arange(start + 1, stop + 1)
            columns = getattr(self, f"_{table}")(rng, ids, agency[start:stop])
            yield "".join("\t".join(row) + "\n" for row in zip(*columns, strict=True))

    def columns(self, table: str) -> list[str]:
        return COLUMNS[table]

    # -- people and contact details ----------------------------------------------------------

    def _people(self, rng: np.random.Generator, n: int) -> tuple[list[str], list[str], list[str]]:
        p = self.pools
        female = (rng.random(n) < 0.55).tolist()
        with_middle = (rng.random(n) < 0.7).tolist()
        fm, ff = choose(rng, p.first_m, n), choose(rng, p.first_f, n)
        lm, lf = choose(rng, p.last_m, n), choose(rng, p.last_f, n)
        mm, mf = choose(rng, p.middle_m, n), choose(rng, p.middle_f, n)
        names = [
            f"{lf[i]} {ff[i]} {mf[i]}"
            if female[i] and with_middle[i]
            else f"{lf[i]} {ff[i]}"
            if female[i]
            else f"{lm[i]} {fm[i]} {mm[i]}"
            if with_middle[i]
            else f"{lm[i]} {fm[i]}"
            for i in range(n)
        ]
        digits = rng.integers(0, 10**7, n).tolist()
        codes = rng.integers(900, 1000, n).tolist()
        phones = [
            f"+7 {c} {d // 10_000:03d}-{d // 100 % 100:02d}-{d % 100:02d}"
            for c, d in zip(codes, digits, strict=True)
        ]
        users, domains = choose(rng, p.users, n), choose(rng, p.domains, n)
        suffix = rng.integers(1, 1000, n).tolist()
        emails = [f"{u}{s}@{d}" for u, s, d in zip(users, suffix, domains, strict=True)]
        return names, phones, emails

    @staticmethod
    def _nullable(rng: np.random.Generator, values: list[str], share: float) -> list[str]:
        missing = (rng.random(len(values)) < share).tolist()
        return [r"\N" if m else v for v, m in zip(values, missing, strict=True)]

    @staticmethod
    def _ids(values: np.ndarray) -> list[str]:
        return [str(v) for v in values.tolist()]

    # -- tables ------------------------------------------------------------------------------

    def _agencies(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        names = choose(rng, self.pools.companies, len(ids))
        plans = weighted(rng, {"trial": 1, "standard": 6, "pro": 3}, len(ids))
        settings = [json.dumps({"timezone": "Europe/Moscow", "locale": "ru"})] * len(ids)
        created = iso(EPOCH - rng.random(len(ids)) * 86400 * 365)
        slugs = [f"agency-{i}" for i in ids.tolist()]
        return [self._ids(ids), names, slugs, plans, settings, created, created]

    def _agency_users(
        self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray
    ) -> Columns:
        names, _, emails = self._people(rng, len(ids))
        emails = [f"{i}.{e}" for i, e in zip(ids.tolist(), emails, strict=True)]
        roles = weighted(rng, {"owner": 1, "manager": 3, "agent": 10}, len(ids))
        created = iso(timestamps(rng, len(ids)))
        return [self._ids(ids), self._ids(agency), emails, names, roles, created, created]

    def _companies(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        n = len(ids)
        names = choose(rng, self.pools.companies, n)
        tax = [f"{v:010d}" for v in rng.integers(0, 10**10, n).tolist()]
        industries = weighted(
            rng,
            {
                "retail": 3,
                "logistics": 2,
                "construction": 2,
                "it": 2,
                "medicine": 1,
                "education": 1,
            },
            n,
        )
        streets, cities = choose(rng, self.pools.streets, n), choose(rng, self.pools.cities, n)
        address = [f"{c}, {s}" for c, s in zip(cities, streets, strict=True)]
        staff = rng.integers(1, 500, n).tolist()
        details = [json.dumps({"employees": s}) for s in staff]
        created = iso(timestamps(rng, n))
        return [
            self._ids(ids),
            self._ids(agency),
            names,
            self._nullable(rng, tax, 0.2),
            industries,
            address,
            details,
            created,
            created,
        ]

    def _leads(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        n = len(ids)
        names, phones, emails = self._people(rng, n)
        company = self._ids(self.same_agency("companies", agency, f"leads.{ids[0]}"))
        status = weighted(
            rng, {"new": 30, "contacted": 25, "qualified": 20, "won": 10, "lost": 15}, n
        )
        source = weighted(
            rng,
            {
                "website": 35,
                "whatsapp": 20,
                "telegram": 15,
                "referral": 15,
                "ads": 10,
                "cold_call": 5,
            },
            n,
        )
        score = self._ids(rng.integers(0, 101, n))
        products = weighted(
            rng, {"osago": 35, "kasko": 25, "health": 15, "property": 15, "travel": 10}, n
        )
        budget = rng.integers(5, 500, n).tolist()
        info = [
            f'{{"product": "{p}", "budget": {b * 1000}}}'
            for p, b in zip(products, budget, strict=True)
        ]
        created = iso(timestamps(rng, n))
        return [
            self._ids(ids),
            self._ids(agency),
            self._nullable(rng, company, 0.35),
            names,
            self._nullable(rng, phones, 0.05),
            self._nullable(rng, emails, 0.3),
            status,
            source,
            score,
            info,
            created,
            created,
        ]

    def _clients(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        n = len(ids)
        names, phones, emails = self._people(rng, n)
        lead = self._ids(self.same_agency("leads", agency, f"clients.{ids[0]}"))
        streets, cities = choose(rng, self.pools.streets, n), choose(rng, self.pools.cities, n)
        address = [f"{c}, {s}" for c, s in zip(cities, streets, strict=True)]
        channel = weighted(rng, {"whatsapp": 5, "telegram": 3, "phone": 2}, n)
        contact = [f'{{"preferred": "{c}"}}' for c in channel]
        created = iso(timestamps(rng, n))
        return [
            self._ids(ids),
            self._ids(agency),
            self._nullable(rng, lead, 0.4),
            names,
            phones,
            self._nullable(rng, emails, 0.4),
            address,
            contact,
            created,
            created,
        ]

    def _services(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        n = len(ids)
        names = weighted(
            rng,
            {
                "Консультация": 3,
                "Оформление полиса": 3,
                "Осмотр авто": 2,
                "Продление договора": 2,
                "Урегулирование убытка": 1,
            },
            n,
        )
        minutes = self._ids(rng.choice([15, 30, 45, 60, 90], n))
        price = self._ids(rng.integers(0, 50, n) * 50_000)
        created = iso(timestamps(rng, n))
        return [self._ids(ids), self._ids(agency), names, minutes, price, created, created]

    def _staff(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        names, phones, emails = self._people(rng, len(ids))
        jobs = choose(rng, self.pools.jobs, len(ids))
        created = iso(timestamps(rng, len(ids)))
        return [self._ids(ids), self._ids(agency), names, phones, emails, jobs, created, created]

    def _staff_schedules(
        self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray
    ) -> Columns:
        n = len(ids)
        staff = self._ids(self.same_agency("staff", agency, f"schedules.{ids[0]}"))
        weekday = self._ids(rng.integers(0, 7, n))
        start = rng.integers(8, 12, n)
        starts = [f"{h:02d}:00" for h in start.tolist()]
        ends = [f"{h:02d}:00" for h in (start + rng.integers(4, 9, n)).tolist()]
        created = iso(timestamps(rng, n))
        return [self._ids(ids), self._ids(agency), staff, weekday, starts, ends, created, created]

    def _bookings(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        n = len(ids)
        key = f"bookings.{ids[0]}"
        client = self._ids(self.same_agency("clients", agency, key + ".c"))
        staff = self._ids(self.same_agency("staff", agency, key + ".s"))
        service = self._ids(self.same_agency("services", agency, key + ".v"))
        begin = np.floor(timestamps(rng, n) / 900) * 900  # on quarter hours
        end = begin + rng.choice([15, 30, 45, 60, 90], n) * 60
        status = weighted(
            rng, {"booked": 15, "confirmed": 20, "done": 50, "cancelled": 10, "no_show": 5}, n
        )
        notes = self._nullable(rng, choose(rng, self.pools.sentences, n), 0.7)
        created = iso(begin - rng.random(n) * 86400 * 14)
        return [
            self._ids(ids),
            self._ids(agency),
            client,
            staff,
            service,
            iso(begin),
            iso(end),
            status,
            notes,
            created,
            created,
        ]

    def _dialog_contexts(
        self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray
    ) -> Columns:
        n = len(ids)
        client = self._ids(self.same_agency("clients", agency, f"dialogs.{ids[0]}"))
        channel = weighted(rng, {"whatsapp": 5, "telegram": 3, "sms": 1, "email": 1, "web": 1}, n)
        step = weighted(rng, {"greeting": 2, "qualifying": 3, "booking": 2, "done": 3}, n)
        state = [f'{{"step": "{s}"}}' for s in step]
        created = iso(timestamps(rng, n))
        return [self._ids(ids), self._ids(agency), client, channel, state, created, created]

    def _reminders(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        n = len(ids)
        booking = self._ids(self.same_agency("bookings", agency, f"reminders.{ids[0]}"))
        at = timestamps(rng, n)
        sent = self._nullable(rng, iso(at + 5), 0.3)
        channel = weighted(rng, {"whatsapp": 5, "telegram": 3, "sms": 2}, n)
        created = iso(at - 86400)
        return [
            self._ids(ids),
            self._ids(agency),
            booking,
            iso(at),
            channel,
            sent,
            created,
            created,
        ]

    def _messages(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        n = len(ids)
        client = self._ids(self.same_agency("clients", agency, f"messages.{ids[0]}"))
        direction = weighted(rng, {"in": 1, "out": 1}, n)
        channel = weighted(rng, {"whatsapp": 5, "telegram": 3, "sms": 1, "email": 1}, n)
        body = choose(rng, self.pools.sentences, n)
        return [
            self._ids(ids),
            self._ids(agency),
            client,
            direction,
            channel,
            body,
            iso(timestamps(rng, n)),
        ]

    def _ai_agents(self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray) -> Columns:
        n = len(ids)
        names = [f"Ассистент {i}" for i in ids.tolist()]
        model = weighted(rng, {"gpt-4o-mini": 3, "claude-haiku": 2, "llama-3-8b": 1}, n)
        temperature = rng.integers(0, 10, n).tolist()
        config = [f'{{"temperature": 0.{t}}}' for t in temperature]
        created = iso(timestamps(rng, n))
        return [self._ids(ids), self._ids(agency), names, model, config, created, created]

    def _agent_memory(
        self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray
    ) -> Columns:
        n = len(ids)
        key = f"memory.{ids[0]}"
        agent = self._ids(self.same_agency("ai_agents", agency, key + ".a"))
        client = self._nullable(rng, self._ids(self.same_agency("clients", agency, key)), 0.2)
        content = choose(rng, self.pools.sentences, n)
        vectors = rng.standard_normal((n, 64)).astype(np.float32)
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        embedding = ["[" + ",".join(f"{x:.4f}" for x in row) + "]" for row in vectors.tolist()]
        created = iso(timestamps(rng, n))
        return [self._ids(ids), self._ids(agency), agent, client, content, embedding, created]

    def _agent_subscriptions(
        self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray
    ) -> Columns:
        n = len(ids)
        key = f"subscriptions.{ids[0]}"
        agent = self._ids(self.same_agency("ai_agents", agency, key + ".a"))
        client = self._ids(self.same_agency("clients", agency, key))
        channel = [f"channel-{i}" for i in ids.tolist()]  # unique per (agent, client, channel)
        active = ["t" if a else "f" for a in (rng.random(n) < 0.85).tolist()]
        created = iso(timestamps(rng, n))
        return [self._ids(ids), self._ids(agency), agent, client, channel, active, created, created]

    def _ai_interactions(
        self, rng: np.random.Generator, ids: np.ndarray, agency: np.ndarray
    ) -> Columns:
        n = len(ids)
        key = f"interactions.{ids[0]}"
        agent = self._ids(self.same_agency("ai_agents", agency, key + ".a"))
        client = self._nullable(rng, self._ids(self.same_agency("clients", agency, key)), 0.1)
        prompt, response = (
            choose(rng, self.pools.sentences, n),
            choose(rng, self.pools.sentences, n),
        )
        tokens = self._ids(rng.integers(50, 4000, n))
        latency = self._ids(rng.gamma(2.0, 400.0, n).astype(np.int64) + 50)
        return [
            self._ids(ids),
            self._ids(agency),
            agent,
            client,
            prompt,
            response,
            tokens,
            latency,
            iso(timestamps(rng, n)),
        ]
