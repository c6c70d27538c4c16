"""The plans of the CRM mix's statements as a tenant sees them: EXPLAIN (ANALYZE, BUFFERS) of
every statement each request of loadtests/mix.py runs, as crm_app under row-level security,
on the endpoint the load sends it to, for the agency with the most leads.

The requests run their own code against a connection that explains instead of executing
(writes are rolled back), so the plans are of the load's statements, not of a copy of them.
Run on the seeded dev lab (`make seed SCALE=prod` for production plans). Printed, never
asserted.

    python -m benchmarks.plans [--request dashboard] [--runs 3]
"""

from __future__ import annotations

import argparse
import random
from typing import Any

import psycopg

from harness.lab.project import Lab
from loadtests.mix import MIX, as_tenant, load_samples

EXPLAIN = "EXPLAIN (ANALYZE, BUFFERS, SETTINGS) "


class Explaining:
    """Stands in for a connection (and its cursor): every statement is explained, plans kept."""

    def __init__(self, conn: psycopg.Connection[Any]) -> None:
        self.conn = conn
        self.plans: list[tuple[str, str]] = []

    def execute(self, query: str, params: Any = None) -> Explaining:
        rows = self.conn.execute(EXPLAIN + query, params).fetchall()
        self.plans.append((query, "\n".join(str(r[0]) for r in rows)))
        return self

    def executemany(self, query: str, params_seq: Any) -> None:
        for params in params_seq:
            self.execute(query, params)

    def fetchall(self) -> list[Any]:
        return []

    def fetchone(self) -> None:
        return None

    def cursor(self) -> Explaining:
        return self

    def __enter__(self) -> Explaining:
        return self

    def __exit__(self, *exc: object) -> None:
        return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--request", choices=[r.name for r in MIX], action="append")
    parser.add_argument("--runs", type=int, default=2, help="plans per request (the last shown)")
    args = parser.parse_args()
    lab = Lab.discover()
    with psycopg.connect(lab.dsn("ro"), autocommit=True) as conn:
        samples = load_samples(conn)
        found = conn.execute("SELECT agency_id, count(*) FROM leads GROUP BY agency_id")
        counts: dict[int, int] = {int(a): int(n) for a, n in found.fetchall()}
    agency = max(samples.agencies, key=lambda a: counts.get(a.id, 0))
    print(f"agency {agency.id}: {counts.get(agency.id, 0):,} leads, {len(agency.clients)} clients")
    rnd = random.Random(42)
    for request in MIX:
        if args.request and request.name not in args.request:
            continue
        endpoint = "rw" if request.primary else "ro"
        with psycopg.connect(lab.dsn(endpoint, role="crm_app")) as conn:
            for _ in range(args.runs):
                explaining = Explaining(conn)
                as_tenant(conn, agency)
                request.action(explaining, agency, samples, rnd)  # type: ignore[arg-type]
                conn.rollback()
        print(f"\n=== {request.name} ({endpoint}) ===")
        for query, plan in explaining.plans:
            print("-- " + " ".join(query.split()))
            print(plan)


if __name__ == "__main__":
    main()
