"""pgbench on the same cluster as a reference for the CRM mix's capacity: its built-in
select-only and simple-update transactions weighted like the mix's reads and writes, run in
the leader's container over its local socket, in a database of its own that is dropped
afterwards whatever happens. What the cluster does with no think time, no tenant policy and
no proxy hop: the machine's ceiling the mix's is read against."""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.core.errors import ConfigError, HarnessError
from harness.core.progress import Say
from harness.stack.lifecycle import Stack
from loadtests.mix import MIX

DATABASE = "gardenlab_pgbench"
TPS = re.compile(r"^tps = ([0-9.]+) \(without initial connection time\)", re.M)
LATENCY = re.compile(r"^latency average = ([0-9.]+) ms", re.M)
PROCESSED = re.compile(r"^number of transactions actually processed: (\d+)", re.M)
FAILED = re.compile(r"^number of failed transactions: (\d+)", re.M)


def mix_weights() -> tuple[int, int]:
    """Reads and writes of the CRM mix by weight: stale-tolerant reads vs the primary's work."""
    reads = sum(r.weight for r in MIX if not r.primary)
    return reads, sum(r.weight for r in MIX if r.primary)


@dataclass(frozen=True)
class PgbenchPlan:
    clients: int = 8
    seconds: float = 30.0
    scale: int = 10  # 1M accounts: well past the buffers' hot set, like the CRM's tables

    def __post_init__(self) -> None:
        if not 1 <= self.clients <= 200:
            raise ConfigError(
                "--pgbench-clients must be between 1 and 200",
                "`harness load --help` explains every option",
            )

    @property
    def scripts(self) -> list[str]:
        reads, writes = mix_weights()
        return [f"select-only@{reads}", f"simple-update@{writes}"]

    def command(self) -> list[str]:
        line = ["pgbench", "--no-vacuum", "--client", str(self.clients), "--jobs", "2"]
        line += ["--time", str(max(1, round(self.seconds)))]
        for script in self.scripts:
            line += ["--builtin", script]
        return [*line, DATABASE]


@dataclass(frozen=True)
class PgbenchResult:
    clients: int
    seconds: float
    scripts: list[str]
    transactions: int
    failed: int
    tps: float
    latency_ms: float


def parse(output: str, plan: PgbenchPlan) -> PgbenchResult:
    """pgbench's summary; a summary without a tps line is a failed run, said with its text."""
    found = {key: rx.search(output) for key, rx in (("tps", TPS), ("latency", LATENCY))}
    if not all(found.values()):
        tail = "\n".join(output.strip().splitlines()[-5:])
        raise HarnessError(f"pgbench printed no result:\n{tail}", "its output is above")
    processed, failed = PROCESSED.search(output), FAILED.search(output)
    return PgbenchResult(
        plan.clients,
        plan.seconds,
        plan.scripts,
        int(processed[1]) if processed else 0,
        int(failed[1]) if failed else 0,
        float(found["tps"][1]),  # type: ignore[index]
        float(found["latency"][1]),  # type: ignore[index]
    )


def run(stack: Stack, plan: PgbenchPlan, say: Say = print) -> PgbenchResult:
    """Initialise, run, drop: the cluster is left with no pgbench database, even on failure."""
    leader = stack.leader()
    drop = f"DROP DATABASE IF EXISTS {DATABASE} WITH (FORCE)"
    say(f"pgbench: {' + '.join(plan.scripts)}, {plan.clients} clients, {plan.seconds:.0f} s")
    stack.node_sql(leader, drop)
    try:
        stack.node_sql(leader, f"CREATE DATABASE {DATABASE}")
        stack.execute(leader, ["pgbench", "-i", "-q", "-s", str(plan.scale), DATABASE], "postgres")
        stack.node_sql(leader, "CHECKPOINT")  # the initial load's dirty pages are not the run's
        output = stack.execute(leader, plan.command(), "postgres")
    finally:
        stack.node_sql(leader, drop)
    return parse(output, plan)
