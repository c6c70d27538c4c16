"""What the fault proxy in the stack's paths costs, so load figures stay honest.

Measured on the running dev lab (`make dev-up` first), no toxics:
- client path: `select 1` round trips on the direct rw port against the proxied rw port;
- replication path: synchronous commits, each of which crosses the leader's replication
  proxy twice (WAL out, flush acknowledgement back);
- the proxy's CPU during the commits, from its container's cgroup.
Printed, never asserted.

    python -m benchmarks.proxy_cost [--count 2000]
"""

from __future__ import annotations

import argparse
import statistics
import time

import psycopg

from harness.lab.project import Lab
from harness.lab.topology import FAULTPROXY
from harness.stack.lifecycle import Stack

CPU_USAGE = "/sys/fs/cgroup/cpuacct/cpuacct.usage"  # cgroup v1, nanoseconds


def timings_ms(dsn: str, sql: str, count: int) -> list[float]:
    with psycopg.connect(dsn, autocommit=True) as conn:
        conn.execute("create table if not exists proxy_cost (id bigint)")
        samples = []
        for i in range(count):
            start = time.perf_counter()
            conn.execute(sql, (i,) if "%s" in sql else None)
            samples.append((time.perf_counter() - start) * 1000)
    return samples[count // 10 :]


def summary(samples: list[float]) -> str:
    q = statistics.quantiles(samples, n=100)
    return f"p50 {q[49]:6.3f} ms   p99 {q[98]:6.3f} ms"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--count", type=int, default=2000)
    args = parser.parse_args()
    lab = Lab.discover()
    stack = Stack(lab)

    def cpu_seconds() -> float:
        return int(stack.execute(FAULTPROXY, ["cat", CPU_USAGE])) / 1e9

    for label, endpoint in (("direct rw port:    ", "rw"), ("proxied rw port:   ", "proxied-rw")):
        print(f"select 1, {label} {summary(timings_ms(lab.dsn(endpoint), 'select 1', args.count))}")
    before, start = cpu_seconds(), time.monotonic()
    commits = timings_ms(lab.dsn("rw"), "insert into proxy_cost values (%s)", args.count)
    cpu, wall = cpu_seconds() - before, time.monotonic() - start
    print(f"sync commit (via repl proxy): {summary(commits)}")
    print(
        f"fault proxy CPU: {cpu:.2f} s over {wall:.1f} s ({100 * cpu / wall:.1f}% of one core) "
        f"for {args.count} commits, {1000 * cpu / args.count:.3f} ms per commit"
    )
    with psycopg.connect(lab.dsn("rw"), autocommit=True) as conn:
        conn.execute("drop table proxy_cost")


if __name__ == "__main__":
    main()
