"""How the CLI shows things: the two consoles, errors as message and hint, progress of long
steps, and the tables several commands print."""

from __future__ import annotations

import re
import sys
from dataclasses import asdict
from typing import TYPE_CHECKING, Any, NoReturn

from rich.console import Console
from rich.status import Status
from rich.table import Table

from harness.core.errors import HarnessError
from harness.lab.topology import MEMBERS, NODES

if TYPE_CHECKING:
    from harness.stack.lifecycle import StackStatus
    from harness.stack.readiness import Results

# Off a terminal (CI logs, pipes) rich would wrap at 80 columns; tables need more.
out = Console(width=None if Console().is_terminal else 120)
err = Console(stderr=True, width=None if Console(stderr=True).is_terminal else 120)

BUILD_STEP = re.compile(r"^(Step \d+/\d+ : (FROM|RUN)|Successfully tagged)")
MARKS = {True: "[green]pass[/]", False: "[bold red]FAIL[/]", None: "[dim]skipped[/]"}


def fail(exc: HarnessError) -> NoReturn:
    err.print(f"[bold red]error:[/] {exc.message}", highlight=False, markup=True)
    if exc.hint:
        err.print(f"  [yellow]hint:[/] {exc.hint}", highlight=False)
    sys.exit(exc.exit_code)


INTERRUPTED = 130  # what a command's Ctrl-C exits with; `main` turns it into SIGINT's end


def exit_interrupted(message: str) -> NoReturn:
    """After a Ctrl-C was cleaned up: say what was left how, and unwind (the `with` blocks
    on the way out still close) to `main`, which ends the process as SIGINT would."""
    err.print(message, highlight=False)
    sys.exit(INTERRUPTED)


def say(text: str) -> None:
    """Progress and notes go to stderr, so stdout stays the command's answer."""
    err.print(text, highlight=False)


class ProgressView:
    """Shows long steps as they go: a spinner on a terminal, a line per milestone elsewhere."""

    def __init__(self) -> None:
        self.tty = err.is_terminal
        self.status: Status | None = err.status("") if self.tty else None
        self.passed: set[str] = set()

    def __enter__(self) -> ProgressView:
        if self.status:
            self.status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self.status:
            self.status.stop()

    def say(self, text: str) -> None:
        err.print(text, highlight=False)

    def build_line(self, line: str) -> None:
        if self.status:
            self.status.update(f"building images: {line[:90]}")
        elif BUILD_STEP.match(line):
            err.print(f"  build: {line}", highlight=False, markup=False)

    def readiness_round(self, results: Results, elapsed: float) -> None:
        for check, seen in results:
            if seen.ok and check.name not in self.passed:
                self.passed.add(check.name)
                err.print(f"  [green]ok[/] {check.name} ({elapsed:.1f} s): {seen.detail}")
        pending = [(c, p) for c, p in results if not p.ok]
        if self.status and pending:
            check, seen = pending[0]
            self.status.update(f"waiting {elapsed:.0f} s for {check.name}: {seen.detail[:80]}")


def status_table(status: StackStatus) -> Table:
    cluster = status.cluster
    leader = cluster.leader.name if cluster and cluster.leader else "none"
    health = "[green]healthy[/]" if status.healthy else "[bold red]NOT HEALTHY[/]"
    table = Table(title=f"gardenlab: {health}  leader: {leader}", title_justify="left")
    for column in ("member", "role", "state", "TL", "lag (bytes)", "rw", "ro", "container"):
        table.add_column(column)
    shown = [
        n
        for n in MEMBERS
        if n in NODES or (cluster and cluster.member(n)) or n in status.containers
    ]
    for node in shown:
        m = cluster.member(node) if cluster else None
        table.add_row(
            node,
            m.role if m else "-",
            (f"{m.state}, restart pending" if m.pending_restart else m.state) if m else "-",
            str(m.timeline) if m and m.timeline is not None else "-",
            str(m.lag) if m and m.lag is not None else "-",
            status.backend("rw", node),
            status.backend("ro", node),
            status.containers.get(node, "absent"),
        )
    return table


def monitoring_lines(status: StackStatus) -> list[str]:
    """Firing alerts and targets down, one line each; monitoring's absence in one line."""
    if status.monitoring_error:
        return [f"[yellow]monitoring:[/] {status.monitoring_error}"]
    lines = [
        f"[bold red]alert[/] {a.name} ({a.where or 'cluster'}) "
        f"since {a.starts_at[:19]}: {a.summary}"
        for a in status.alerts
    ]
    lines += [
        f"[yellow]target down[/] {t.job}/{t.instance}: {t.error}" for t in status.targets_down
    ]
    up = len(status.targets) - len(status.targets_down)
    lines.append(
        f"monitoring: {len(status.alerts)} alerts firing, {up}/{len(status.targets)} targets up"
    )
    return lines


def status_json(status: StackStatus) -> dict[str, Any]:
    return {
        "healthy": status.healthy,
        "containers": status.containers,
        "cluster": asdict(status.cluster) if status.cluster else None,
        "cluster_error": status.cluster_error,
        "backends": [asdict(b) for b in status.backends],
        "alerts": [asdict(a) for a in status.alerts],
        "targets_down": [asdict(t) for t in status.targets_down],
        "monitoring_error": status.monitoring_error,
    }
