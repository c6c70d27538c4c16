"""The cutover gate: the lab's checks against a running cluster named by an inventory.

Read-only checks first; only when they prove a healthy Patroni cluster does Locust load it
(the CRM mix, which writes CRM rows as the lab's load does), and only with
`allow_disruptive` is there a planned switchover with its write outage measured.
The verdict is go or no-go, with every check's evidence.
"""

from __future__ import annotations

import json
import shlex
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import psycopg

from harness.chaos.invariants import outage
from harness.chaos.workload import TABLE, Workload, WorkloadTarget
from harness.clients.addresses import conninfo, http_url, refused_plaintext, split_address
from harness.clients.patroni import Cluster, PatroniClient, verifying
from harness.clients.pgbackrest import RepositoryInfo
from harness.config.inventory import Inventory
from harness.core.errors import CommandError, HarnessError
from harness.core.process import run
from harness.core.progress import Say
from harness.lab.project import ROLE_SECRETS
from harness.lab.topology import SCOPE
from harness.load.locust import LoadTarget
from harness.load.plan import LoadPlan
from harness.load.report import ALL
from harness.load.run import LoadResult, run_target
from harness.stack.health import cluster_findings

SWITCHOVER_SETTLE = 5.0  # s of writes after Patroni reports the switchover done


@dataclass(frozen=True)
class GateCheck:
    """One row of the gate's table."""

    name: str
    passed: bool | None  # None: not applicable here (skipped)
    detail: str


@dataclass
class GateReport:
    target: str
    checks: list[GateCheck] = field(default_factory=list)
    load: LoadResult | None = None
    switchover_outage: float | None = None

    @property
    def passed(self) -> bool:
        """Go: every check that applies passed."""
        return bool(self.checks) and all(c.passed is not False for c in self.checks)

    def add(self, name: str, passed: bool | None, detail: str) -> bool:
        self.checks.append(GateCheck(name, passed, detail))
        return passed is not False

    def to_json(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "verdict": "go" if self.passed else "no-go",
            "checks": [asdict(c) for c in self.checks],
            "load": self.load.to_json() if self.load else None,
            "switchover_outage_seconds": self.switchover_outage,
        }


def dsn(
    address: str, secrets: Mapping[str, str], role: str = "postgres", ca: str | None = None
) -> str:
    """Connection string for a host:port endpoint of the target, as role; with the
    inventory's CA, the servers are verified against it (verify-full)."""
    host, port = split_address(address)
    return conninfo(host, port, role, secrets.get(ROLE_SECRETS[role], ""), sslrootcert=ca)


def rest_url(inventory: Inventory, address: str, path: str = "") -> str:
    """A server's Patroni REST API: HTTPS when the inventory renders TLS, as the bundle does."""
    return http_url(*split_address(address), path, tls=inventory.tls is not None)


def one_row(conninfo: str, query: str) -> tuple[Any, ...]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        row = conn.execute(query).fetchone()
    return tuple(row) if row else ()


def cluster_checks(
    report: GateReport, inventory: Inventory, cluster: Cluster, max_lag: int
) -> bool:
    """Members of this inventory, then the shared health findings, each a row."""
    expected = {h.name for h in inventory.with_role("database")}
    names = {m.name for m in cluster.members}
    if not report.add(
        "a Patroni cluster of this inventory",
        cluster.scope == SCOPE and names <= expected and bool(names),
        f"scope {cluster.scope!r}, members {sorted(names)}, inventory's "
        f"database hosts {sorted(expected)}",
    ):
        return False
    ok = True
    for finding in cluster_findings(cluster, replicas=1, max_lag=max_lag):
        ok &= report.add(finding.name, finding.passed, finding.detail)
    return ok


def routing_checks(
    report: GateReport, inventory: Inventory, secrets: Mapping[str, str], system_id: str
) -> bool:
    ok = True
    query = "SELECT pg_is_in_recovery(), system_identifier::text FROM pg_control_system()"
    endpoints = inventory.endpoints
    for name, address, standby in (
        ("rw", endpoints.rw, False),
        ("ro", endpoints.ro, True),
        ("pooler", endpoints.pooler, False),
    ):
        try:
            in_recovery, answered_id = one_row(
                dsn(address, secrets, ca=inventory.client_ca_file), query
            )
            passed = in_recovery == standby and answered_id == system_id
            detail = f"{address}: {'standby' if in_recovery else 'primary'}, system {answered_id}"
        except psycopg.Error as exc:
            passed, detail = False, f"{address}: {str(exc).strip().splitlines()[-1]}"
        wanted = "a replica" if standby else "the primary"
        ok &= report.add(f"{name} reaches {wanted} of this cluster", passed, detail)
    if inventory.tls is not None:
        ok &= plaintext_check(report, inventory, secrets)
    return ok


def plaintext_check(report: GateReport, inventory: Inventory, secrets: Mapping[str, str]) -> bool:
    """With TLS rendered, every endpoint refuses a client that does not encrypt (as refused by
    pg_hba or PgBouncer: an endpoint that is merely down does not count)."""
    endpoints = inventory.endpoints
    failures: list[str] = []
    refusals: list[str] = []
    for address in (endpoints.rw, endpoints.ro, endpoints.pooler):
        try:
            one_row(f"{dsn(address, secrets)} sslmode=disable", "SELECT 1")
            failures.append(f"{address}: answered in plaintext")
        except psycopg.OperationalError as exc:
            why = str(exc).strip().splitlines()[-1]
            (refusals if refused_plaintext(exc) else failures).append(f"{address}: {why}")
    return report.add(
        "plaintext connections refused", not failures, "; ".join(failures or refusals)
    )


def backup_checks(
    report: GateReport, inventory: Inventory, secrets: Mapping[str, str], max_backup_age: float
) -> bool:
    failed, archived, last_failed, last_archived = one_row(
        dsn(inventory.endpoints.rw, secrets, ca=inventory.client_ca_file),
        "SELECT failed_count, archived_count, last_failed_time, last_archived_time "
        "FROM pg_stat_archiver",
    )
    failing = last_failed is not None and (last_archived is None or last_failed > last_archived)
    ok = report.add(
        "WAL archiving",
        not failing,
        f"{archived} archived, {failed} failed"
        + (f", failing since {last_failed}" if failing else ""),
    )
    if inventory.backup_info_command is None:
        report.add("a recent backup", None, "no backups.info_command in the inventory")
        return ok
    try:
        info = RepositoryInfo.parse(run(shlex.split(inventory.backup_info_command), timeout=60))
    except (CommandError, ValueError) as exc:
        return report.add("a recent backup", False, f"reading the repository failed: {exc}")
    newest = max((b.stopped for b in info.backups), default=None)
    age = None if newest is None else time.time() - newest
    return ok & report.add(
        f"a backup younger than {max_backup_age / 3600:g} h",
        age is not None and age <= max_backup_age,
        "no backup"
        if age is None
        else f"newest ended {age / 3600:.1f} h ago "
        f"({datetime.fromtimestamp(newest or 0, UTC):%Y-%m-%d %H:%M} UTC)",
    )


def read_only_checks(
    report: GateReport,
    inventory: Inventory,
    secrets: Mapping[str, str],
    patroni: PatroniClient,
    *,
    max_lag: int,
    max_backup_age: float | None,
) -> bool:
    """Everything that proves a healthy Patroni cluster of this inventory without touching it;
    `max_backup_age` None leaves out archiving and backups (a fresh cluster has none)."""
    try:
        cluster = patroni.cluster()
    except HarnessError as exc:
        return report.add("a Patroni cluster of this inventory", False, exc.message)
    if not cluster_checks(report, inventory, cluster, max_lag):
        return False
    members = [h.name for h in inventory.with_role("database")]
    leader_rest = inventory.endpoints.patroni[members.index(cluster.leaders[0].name)]
    system_id = str(
        httpx.get(
            rest_url(inventory, leader_rest, "/patroni"),
            timeout=3,
            verify=verifying(inventory.client_ca_file),
        )
        .json()
        .get("database_system_identifier", "")
    )
    healthy = routing_checks(report, inventory, secrets, system_id)
    if max_backup_age is not None:
        healthy &= backup_checks(report, inventory, secrets, max_backup_age)
    return healthy


def measure_switchover(
    patroni: PatroniClient,
    cluster: Cluster,
    rw: str,
    patroni_urls: tuple[str, ...],
    patroni_ca: str | None,
) -> float:
    """A planned switchover to the synchronous standby; the write outage a client of the rw
    endpoint sees, measured as chaos scenarios measure it (one writer, the same invariants)."""
    target = WorkloadTarget(rw, rw, rw, patroni_urls, patroni_ca=patroni_ca)
    with Workload(target, writers=1, readers=0, rate=50.0, max_seconds=120) as load:
        time.sleep(2)
        load.mark("fault")
        patroni.switchover(cluster.leaders[0].name, cluster.sync_standbys[0].name)
        time.sleep(SWITCHOVER_SETTLE)
    with psycopg.connect(rw, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {TABLE}")
    return outage(load.record, load.record.marks["fault"]).write_gap


def gate(
    inventory: Inventory,
    secrets: Mapping[str, str],
    plan: LoadPlan,
    out_dir: Path,
    *,
    allow_disruptive: bool = False,
    max_lag: int = 1024 * 1024,
    max_backup_age: float = 26 * 3600,
    say: Say = print,
) -> GateReport:
    report = GateReport(str(inventory.path))
    urls = tuple(rest_url(inventory, e) for e in inventory.endpoints.patroni)
    auth = ("patroni", secrets.get("PATRONI_RESTAPI_PASSWORD", ""))
    with PatroniClient(urls, auth=auth, timeout=3, ca_file=inventory.client_ca_file) as patroni:
        say("gate: read-only checks")
        if not read_only_checks(
            report, inventory, secrets, patroni, max_lag=max_lag, max_backup_age=max_backup_age
        ):
            say("gate: not a healthy Patroni cluster; no load, nothing disruptive")
            return finish(report, out_dir, say)
        say(f"gate: Locust, {plan.users} users for {plan.duration:.0f} s")
        target = LoadTarget(
            dsn(
                inventory.endpoints.pooler if plan.via == "pgbouncer" else inventory.endpoints.rw,
                secrets,
                "crm_app",
                inventory.client_ca_file,
            ),
            dsn(inventory.endpoints.ro, secrets, "crm_app", inventory.client_ca_file),
            dsn(inventory.endpoints.ro, secrets, ca=inventory.client_ca_file),
        )
        report.load = run_target(target, plan, out_dir / "load", say)
        rows = report.load.stats["steady"]
        steady = report.load.aggregate()
        slowest = max((s for s in rows if s.name != ALL and s.count), key=lambda s: s.p95)
        passed = report.add(
            "Locust: " + ", ".join(str(lim) for lim in plan.limits),
            report.load.passed,
            f"{steady.rps:.0f} req/s, p50 {steady.p50:.1f} ms, p95 {steady.p95:.1f} ms, "
            f"p99 {steady.p99:.1f} ms, {steady.errors} errors; slowest type {slowest.name} "
            f"p95 {slowest.p95:.1f} ms" + "".join(f"; {f}" for f in report.load.failures),
        )
        if not allow_disruptive:
            report.add("planned switchover", None, "not run: pass --allow-disruptive")
        elif passed:
            say("gate: planned switchover to the synchronous standby")
            report.switchover_outage = measure_switchover(
                patroni,
                patroni.cluster(),
                dsn(inventory.endpoints.rw, secrets, ca=inventory.client_ca_file),
                urls,
                inventory.client_ca_file,
            )
            report.add(
                "planned switchover",
                report.switchover_outage < 30,
                f"write outage {report.switchover_outage:.2f} s",
            )
    return finish(report, out_dir, say)


def finish(report: GateReport, out_dir: Path, say: Say) -> GateReport:
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "gate.json").write_text(json.dumps(report.to_json(), indent=1, default=str))
    (out_dir / "gate.md").write_text(markdown(report))
    return report


def markdown(report: GateReport) -> str:
    marks = {True: "pass", False: "FAIL", None: "skipped"}
    lines = [
        f"# Cutover gate: {'GO' if report.passed else 'NO-GO'}",
        "",
        f"Target: `{report.target}`",
        "",
        "| check | result | evidence |",
        "|---|---|---|",
    ]
    lines += [f"| {c.name} | {marks[c.passed]} | {c.detail} |" for c in report.checks]
    return "\n".join(lines) + "\n"
