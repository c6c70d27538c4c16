"""What the servers did during a load run: where PostgreSQL spent its time and the CPU each
container used.

Statements come from pg_stat_statements on every node, reset before the run and merged by
statement after it: the mix reads on the replicas and writes on the leader, so one node's view
is half the story. The plans of the slow ones come from auto_explain's entries in the nodes'
logs during the run (PostgreSQL logs to stderr, so the container's log holds them). CPU comes
from each container's cgroup counter read before and after: `docker stats` only samples a rate.
What cannot be read is noted, never a failed run: these figures explain a verdict, they do not
make it.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from typing import Any

from harness.core.errors import HarnessError
from harness.lab.topology import MEMBERS
from harness.stack.lifecycle import Stack

TOP = 5  # statements listed per ranking
PLANS = 3  # slow statements whose plan the report prints
PLAN_LINES = 30  # of each plan, at most
# auto_explain's entry: "... LOG:  duration: 171.586 ms  plan:", then tab-indented lines.
EXPLAINED = re.compile(r"^(\S+ \S+) \S+ \[\d+\] LOG:  duration: ([\d.]+) ms  plan:$")
# The container's own cgroup: v2 (cpu.stat, usage_usec), else v1 (cpuacct.usage, ns).
CPU_COUNTER = (
    "cat /sys/fs/cgroup/cpu.stat 2>/dev/null || cat /sys/fs/cgroup/cpuacct/cpuacct.usage "
    "2>/dev/null || cat /sys/fs/cgroup/cpu,cpuacct/cpuacct.usage"
)
RESET_SQL = "SELECT pg_stat_statements_reset()"
# The harness's own reads of the view are not the workload's.
STATEMENTS_SQL = """SELECT coalesce(json_agg(s), '[]') FROM (
    SELECT query, toplevel, calls, total_exec_time AS total_ms, rows,
           shared_blks_hit AS hit, shared_blks_read AS read
    FROM pg_stat_statements
    WHERE dbid = (SELECT oid FROM pg_database WHERE datname = current_database())
      AND query NOT LIKE '%pg_stat_statements%') AS s"""


@dataclass(frozen=True)
class Statement:
    """One normalised statement, summed over the nodes that ran it."""

    query: str
    toplevel: bool  # False: run inside a function (app.search_leads' query)
    calls: int
    total_ms: float
    rows: int
    hit: int  # shared buffers found in PostgreSQL's cache
    read: int  # shared buffers read from the OS (its page cache or the disk)
    nodes: tuple[str, ...]

    @property
    def mean_ms(self) -> float:
        return self.total_ms / self.calls if self.calls else 0.0

    @property
    def hit_ratio(self) -> float:
        return self.hit / (self.hit + self.read) if self.hit + self.read else 1.0


def merge_statements(per_node: dict[str, list[dict[str, Any]]]) -> list[Statement]:
    """The same statement text on several nodes becomes one row; busiest first."""
    merged: dict[tuple[str, bool], Statement] = {}
    for node, rows in sorted(per_node.items()):
        for row in rows:
            key = (str(row["query"]), bool(row["toplevel"]))
            seen = merged.get(key)
            add = Statement(
                key[0],
                key[1],
                int(row["calls"]),
                float(row["total_ms"]),
                int(row["rows"]),
                int(row["hit"]),
                int(row["read"]),
                (node,),
            )
            if seen is not None:
                add = Statement(
                    key[0],
                    key[1],
                    seen.calls + add.calls,
                    seen.total_ms + add.total_ms,
                    seen.rows + add.rows,
                    seen.hit + add.hit,
                    seen.read + add.read,
                    (*seen.nodes, node),
                )
            merged[key] = add
    return sorted(merged.values(), key=lambda s: s.total_ms, reverse=True)


def parse_cpu(text: str) -> float:
    """CPU seconds from a cgroup counter: v2's cpu.stat or v1's cpuacct.usage."""
    for line in text.splitlines():
        key, _, value = line.partition(" ")
        if key == "usage_usec":
            return int(value) / 1e6
    return int(text.strip()) / 1e9


@dataclass(frozen=True)
class SlowPlan:
    """One statement auto_explain logged: slower than its threshold, with its plan."""

    node: str
    at: str  # the log's timestamp
    duration_ms: float
    query: str
    plan: tuple[str, ...]  # the plan's lines, as logged


def parse_slow_plans(log: str, node: str) -> list[SlowPlan]:
    """auto_explain's entries in a node's log; the other lines (Patroni's) are skipped."""
    found: list[SlowPlan] = []
    lines = log.splitlines()
    for i, line in enumerate(lines):
        match = EXPLAINED.match(line)
        if match is None:
            continue
        body: list[str] = []
        for following in lines[i + 1 :]:
            if not following.startswith("\t"):
                break
            body.append(following[1:])
        query = next((b[len("Query Text: ") :] for b in body if b.startswith("Query Text: ")), "")
        plan = tuple(b for b in body if not b.startswith(("Query Text: ", "Query Parameters: ")))
        found.append(SlowPlan(node, match[1], float(match[2]), query, plan))
    return found


def slowest_plans(plans: list[SlowPlan], n: int = PLANS) -> list[tuple[SlowPlan, int]]:
    """The slowest entry of each statement, slowest first, with how often it was logged."""
    by_query: dict[str, list[SlowPlan]] = {}
    for plan in plans:
        by_query.setdefault(plan.query, []).append(plan)
    ranked = sorted(
        ((max(group, key=lambda p: p.duration_ms), len(group)) for group in by_query.values()),
        key=lambda pair: pair[0].duration_ms,
        reverse=True,
    )
    return ranked[:n]


@dataclass
class ServerUse:
    seconds: float  # wall time between the two readings
    cpu: dict[str, float]  # service -> CPU seconds used in that time
    statements: list[Statement]
    notes: list[str] = field(default_factory=list)
    plans: list[SlowPlan] = field(default_factory=list)  # auto_explain's, during the run

    @property
    def cpu_total(self) -> float:
        return sum(self.cpu.values())

    def top(self, by: str, n: int = TOP) -> list[Statement]:
        """The n statements with the most total_ms or mean_ms."""
        return sorted(self.statements, key=lambda s: float(getattr(s, by)), reverse=True)[:n]

    def to_json(self) -> dict[str, Any]:
        return {
            "seconds": self.seconds,
            "cpu_seconds": self.cpu,
            "statements": [
                {**asdict(s), "mean_ms": s.mean_ms, "hit_ratio": s.hit_ratio}
                for s in self.statements
            ],
            "notes": self.notes,
            "slow_plans": [asdict(p) for p in self.plans],
        }


def why(exc: Exception) -> str:
    """The last line of an error: psql's or Docker's reason, after the command."""
    text = exc.message if isinstance(exc, HarnessError) else str(exc)
    lines = text.strip().splitlines()
    return lines[-1] if lines else type(exc).__name__


class ServerWatch:
    """Readings of the lab's servers around a run: `start` before the load, `finish` after."""

    def __init__(self, stack: Stack) -> None:
        self.stack = stack
        self.notes: list[str] = []
        self._cpu_before: dict[str, float] = {}
        self._started = 0.0
        self._since = datetime.now(UTC)

    def _services(self) -> list[str]:
        return sorted(self.stack.running_services())

    def _nodes(self) -> list[str]:
        return [s for s in self._services() if s in MEMBERS]

    def _cpu(self) -> dict[str, float]:
        found: dict[str, float] = {}
        for service in self._services():
            try:
                found[service] = parse_cpu(self.stack.execute(service, ["sh", "-c", CPU_COUNTER]))
            except (HarnessError, ValueError) as exc:
                self._note(f"no CPU counter in {service}: {why(exc)}")
        return found

    def _note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)

    def start(self) -> None:
        for node in self._nodes():
            try:
                self.stack.node_sql(node, RESET_SQL)
            except HarnessError as exc:
                self._note(
                    f"pg_stat_statements unusable on {node} ({why(exc)}): "
                    "`make migrate` creates the extension, `make dev-up` preloads it"
                )
        self._cpu_before = self._cpu()
        self._started = time.time()
        self._since = datetime.now(UTC)

    def finish(self) -> ServerUse:
        seconds = time.time() - self._started
        after = self._cpu()
        cpu: dict[str, float] = {}
        for service, used in after.items():
            if service not in self._cpu_before:
                continue
            if used < self._cpu_before[service]:  # restarted meanwhile: a new counter
                self._note(f"{service} restarted during the run: its CPU is not counted")
                continue
            cpu[service] = used - self._cpu_before[service]
        per_node: dict[str, list[dict[str, Any]]] = {}
        plans: list[SlowPlan] = []
        for node in self._nodes():
            try:
                per_node[node] = json.loads(self.stack.node_sql(node, STATEMENTS_SQL) or "[]")
            except (HarnessError, ValueError) as exc:
                self._note(f"no statements from {node}: {why(exc)}")
            try:
                plans += parse_slow_plans(self.stack.logs_since(node, self._since), node)
            except HarnessError as exc:
                self._note(f"no log from {node}: {why(exc)}")
        return ServerUse(seconds, cpu, merge_statements(per_node), self.notes, plans)


def one_line(query: str, width: int = 96) -> str:
    text = " ".join(query.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def summary_lines(use: ServerUse, requests: int) -> list[str]:
    """CPU per container and per request; the top statements by total and by mean time."""
    per_request = f", {use.cpu_total * 1000 / requests:.1f} CPU ms per request" if requests else ""
    lines = [
        f"servers: {use.cpu_total:.0f} CPU s in {use.seconds:.0f} s "
        f"({use.cpu_total / use.seconds if use.seconds else 0:.2f} cores){per_request}; "
        "per container, CPU s (cores):",
        "  "
        + "  ".join(
            f"{service} {seconds:.1f} ({seconds / use.seconds if use.seconds else 0:.2f})"
            for service, seconds in sorted(use.cpu.items(), key=lambda kv: -kv[1])
        ),
    ]
    for by, title in (("total_ms", "total"), ("mean_ms", "mean")):
        top = use.top(by)
        if not top:
            continue
        lines.append(f"top statements by {title} time (pg_stat_statements, all nodes):")
        lines.append(
            f"  {'total ms':>10}{'calls':>9}{'mean ms':>9}{'rows':>9}{'hit %':>7}  statement"
        )
        lines += [
            f"  {s.total_ms:>10.0f}{s.calls:>9,}{s.mean_ms:>9.2f}{s.rows:>9,}"
            f"{100 * s.hit_ratio:>7.1f}  {'' if s.toplevel else '(nested) '}{one_line(s.query)}"
            for s in top
        ]
    if use.plans:
        lines.append(
            f"slow statements (auto_explain, {len(use.plans)} logged); the slowest's plans:"
        )
        for plan, times in slowest_plans(use.plans):
            lines.append(
                f"  {plan.duration_ms:.1f} ms on {plan.node} at {plan.at} "
                f"(logged {times}x): {one_line(plan.query)}"
            )
            lines += [f"    {row}" for row in plan.plan[:PLAN_LINES]]
            if len(plan.plan) > PLAN_LINES:
                lines.append(f"    ... {len(plan.plan) - PLAN_LINES} more lines in the JSON")
    lines += [f"  note: {note}" for note in use.notes]
    return lines
