"""HAProxy's stats page: which node each listener currently routes to."""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass

import httpx

AGGREGATE_ROWS = ("FRONTEND", "BACKEND")


@dataclass(frozen=True)
class BackendServer:
    listener: str  # rw or ro
    server: str  # node name
    status: str  # UP, DOWN, MAINT, ...

    @property
    def up(self) -> bool:
        return self.status.startswith("UP")


def parse_stats_csv(text: str) -> list[BackendServer]:
    rows = csv.DictReader(io.StringIO(text.lstrip("# ")))
    return [
        BackendServer(listener=row["pxname"], server=row["svname"], status=row["status"])
        for row in rows
        if row.get("pxname") != "stats" and row.get("svname") not in AGGREGATE_ROWS
    ]


def fetch_backends(stats_url: str, timeout: float = 2.0) -> list[BackendServer]:
    response = httpx.get(stats_url, timeout=timeout)
    response.raise_for_status()
    return parse_stats_csv(response.text)
