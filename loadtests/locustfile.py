"""Locust users for the CRM on PostgreSQL: `harness load` runs this file; so can `locust -f`.

Locust must be imported before psycopg: it monkey-patches the standard library for gevent,
and only then does psycopg wait cooperatively (imported the other way round, 20 users
were serialised to 2 requests/s). Connections go to 127.0.0.1 (libpq resolves names with a
blocking call) and come from one psycopg_pool per endpoint and process; a connection that
breaks is dropped by the pool and replaced, so users reconnect after a failover by
themselves. Every request is reported to Locust under its own name, typed by its endpoint.

Settings come from the environment (`harness load` sets them):
    GARDENLAB_LOAD_WRITE_DSN   primary path (HAProxy rw or PgBouncer), as the tenant role
    GARDENLAB_LOAD_READ_DSN    replicas (HAProxy ro), as the tenant role
    GARDENLAB_LOAD_SAMPLE_DSN  a role that sees every tenant, to draw ids once per process
    GARDENLAB_LOAD_LOG_DIR     where each process writes requests-<pid>.csv (optional)
    GARDENLAB_LOAD_POOL_SIZE   connections per endpoint and process (default 40)
    GARDENLAB_LOAD_WAIT        think time between a user's requests, "MIN,MAX" seconds
    GARDENLAB_LOAD_FLUSH_ROWS  requests buffered before the log is written (default 500)
"""

from __future__ import annotations

import os
import random
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import locust  # first: gevent's monkey-patching must precede psycopg
import psycopg
from gevent.lock import Semaphore  # type: ignore[import-untyped]
from locust import User, between, events
from locust.contrib.csv_request_logger import CsvRequestLogger
from locust.env import Environment
from locust.runners import MasterRunner
from psycopg_pool import ConnectionPool

from loadtests.mix import MIX, Agency, Request, Samples, as_tenant, load_samples

POOL_TIMEOUT = 5.0  # s a user waits for a connection before the request counts as failed


def setting(name: str, default: str | None = None) -> str:
    value = os.environ.get(f"GARDENLAB_LOAD_{name}", default)
    if value is None:
        raise SystemExit(f"GARDENLAB_LOAD_{name} is not set: run the load with `harness load`")
    return value


class Shared:
    """Per process: the two pools and the samples, made on first use (after Locust forks)."""

    def __init__(self) -> None:
        self._lock = Semaphore()
        self._pools: dict[bool, ConnectionPool[Any]] = {}
        self._samples: Samples | None = None

    def pool(self, primary: bool) -> ConnectionPool[Any]:
        made = self._pools.get(primary)
        if made is not None:  # every request asks: no lock once the pool exists
            return made
        with self._lock:
            if primary not in self._pools:
                size = int(setting("POOL_SIZE", "40"))
                self._pools[primary] = ConnectionPool(
                    setting("WRITE_DSN" if primary else "READ_DSN"),
                    min_size=min(4, size),
                    max_size=size,
                    timeout=POOL_TIMEOUT,
                    name="rw" if primary else "ro",
                    open=True,
                )
            return self._pools[primary]

    def samples(self) -> Samples:
        with self._lock:
            if self._samples is None:
                with psycopg.connect(setting("SAMPLE_DSN"), autocommit=True) as conn:
                    self._samples = load_samples(conn)
                if not self._samples.agencies:
                    raise SystemExit("no agency has clients, staff, services and agents: seed")
            return self._samples

    def close(self) -> None:
        for pool in self._pools.values():
            pool.close(timeout=5)
        self._pools.clear()


shared = Shared()


def timed(request: Request) -> Callable[[CrmUser], None]:
    """A Locust task for one request of the mix, reported under the request's name."""

    def task(user: CrmUser) -> None:
        started_at, started = time.time(), time.perf_counter()
        error: BaseException | None = None
        rows = 0
        try:
            with shared.pool(request.primary).connection() as conn:
                as_tenant(conn, user.agency)
                rows = request.action(conn, user.agency, user.samples, user.rnd)
        except psycopg.Error as exc:  # includes PoolTimeout; the pool drops broken connections
            error = exc
        user.environment.events.request.fire(
            request_type="rw" if request.primary else "ro",
            name=request.name,
            response_time=(time.perf_counter() - started) * 1000,
            response_length=rows,
            exception=error,
            start_time=started_at,
            context={},
        )

    task.__name__ = request.name
    return task


class CrmUser(User):
    """One member of an agency's staff: works for one tenant, pauses between actions."""

    tasks = {timed(r): r.weight for r in MIX}  # type: ignore[assignment]  # noqa: RUF012
    wait_time = between(*(float(x) for x in setting("WAIT", "0.2,1.0").split(",")))

    def on_start(self) -> None:
        self.rnd = random.Random()
        self.samples = shared.samples()
        self.agency: Agency = self.rnd.choice(self.samples.agencies)


@events.init.add_listener  # type: ignore[untyped-decorator]
def on_init(environment: Environment, **_: Any) -> None:
    """Each load-generating process logs every request, for windows the harness cuts later."""
    log_dir = os.environ.get("GARDENLAB_LOAD_LOG_DIR")
    if log_dir and not isinstance(environment.runner, MasterRunner):
        path = Path(log_dir) / f"requests-{os.getpid()}.csv"
        rows = int(os.environ.get("GARDENLAB_LOAD_FLUSH_ROWS", "500"))
        CsvRequestLogger(str(path), flush_interval=rows).register(environment)


@events.quitting.add_listener  # type: ignore[untyped-decorator]
def on_quitting(**_: Any) -> None:
    shared.close()


__all__ = ["CrmUser", "locust"]
