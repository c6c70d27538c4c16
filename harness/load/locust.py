"""Locust as a child process: its gevent monkey-patching stays out of the harness. It runs
headless on loadtests/locustfile.py, bounded by `--run-time`, and writes everything into one
directory: its CSV and HTML reports, its log, and a CSV of every request per process."""

from __future__ import annotations

import csv
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import loadtests
from harness.config.monitoring import LatencyFile
from harness.core import process
from harness.core.polling import poll
from harness.core.progress import Say
from harness.lab.project import Lab
from harness.lab.topology import PRIMARY_PATHS, Via
from harness.load.plan import LoadPlan
from harness.load.report import REQUEST_LOGS, RequestTail

STOP_GRACE = 30.0  # s Locust gets to write its reports after being asked to stop
PROGRESS_EVERY = 10.0  # s between progress lines
PUBLISH_INTERVAL = 2.0  # s between latency publications; node_exporter reads at each 5 s scrape
LOCUSTFILE = Path(loadtests.__file__).parent / "locustfile.py"


def prepare_directory(directory: Path) -> None:
    """Request logs of an earlier run in the same directory would be read as this run's."""
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob(REQUEST_LOGS):
        stale.unlink()


@dataclass(frozen=True)
class LoadTarget:
    """Where Locust's users connect: the primary path and the replicas as the tenant role,
    and a role that sees every tenant, to draw the samples users pick from."""

    write_dsn: str
    read_dsn: str
    sample_dsn: str

    @classmethod
    def of_lab(cls, lab: Lab, via: Via) -> LoadTarget:
        return cls(
            lab.dsn(PRIMARY_PATHS[via], role="crm_app", connect_timeout=2),
            lab.dsn("ro", role="crm_app", connect_timeout=2),
            lab.dsn("ro", connect_timeout=5),
        )


def locust_environment(target: LoadTarget, plan: LoadPlan, directory: Path) -> dict[str, str]:
    """Connection strings reach Locust through its environment, never its command line."""
    return {
        **os.environ,
        "GARDENLAB_LOAD_WRITE_DSN": target.write_dsn,
        "GARDENLAB_LOAD_READ_DSN": target.read_dsn,
        "GARDENLAB_LOAD_SAMPLE_DSN": target.sample_dsn,
        "GARDENLAB_LOAD_LOG_DIR": str(directory),
        "GARDENLAB_LOAD_POOL_SIZE": str(plan.pool_size),
        "GARDENLAB_LOAD_WAIT": f"{plan.wait[0]},{plan.wait[1]}",
    }


def headless_command(
    files: Sequence[Path], directory: Path, processes: int, run: Sequence[str] = ()
) -> list[str]:
    """Locust headless over `files` (the users, and a load shape if one sets the users), its
    reports in `directory`; `run` is what decides the users and the end when no shape does."""
    command = [
        sys.executable,
        "-m",
        "locust",
        "-f",
        ",".join(str(f) for f in files),
        "--headless",
        *run,
        "--stop-timeout",
        "5",
        "--only-summary",
        "--csv",
        str(directory / "locust"),
        "--html",
        str(directory / "locust.html"),
        "--exit-code-on-error",
        "0",
    ]
    if processes > 1:
        command += ["--processes", str(processes)]
    return command


def locust_command(plan: LoadPlan, directory: Path, run_time: float) -> list[str]:
    run = ["--users", str(plan.users), "--spawn-rate", f"{plan.spawn_rate:g}"]
    return headless_command(
        [LOCUSTFILE], directory, plan.processes, [*run, "--run-time", f"{int(run_time)}s"]
    )


class LoadLatency:
    """The load's requests as the latency histogram QueryLatencyHigh reads, as the chaos
    workload exports its own: what Locust's processes logged since the last look, published
    through node_exporter's textfile directory (source "load") every PUBLISH_INTERVAL by a
    thread of its own, so a scenario run meanwhile does not stop it."""

    def __init__(self, directory: Path, textfile_dir: Path) -> None:
        self.tail = RequestTail(directory)
        self.file = LatencyFile(textfile_dir, "load")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def publish(self) -> None:
        for record in self.tail.new():
            self.file.histogram.observe(record.ms / 1000)
        self.file.publish()

    def start(self) -> None:
        def loop() -> None:
            while not self._stop.wait(PUBLISH_INTERVAL):
                self.publish()

        self._stop.clear()
        self._thread = threading.Thread(target=loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """The series ends with the load: the file goes."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(PUBLISH_INTERVAL * 5)
        self.file.remove()


class LocustProcess:
    """Locust running headless; stopping it always lets it write its reports first. With a
    textfile directory (the lab's), its latency histogram is published while it runs."""

    def __init__(
        self,
        command: list[str],
        env: dict[str, str],
        log: Path,
        textfile_dir: Path | None = None,
    ) -> None:
        self.command, self.env, self.log_path = command, env, log
        self.latency = LoadLatency(log.parent, textfile_dir) if textfile_dir else None
        self.started = 0.0
        self.cpu_seconds = 0.0  # Locust's processes, user + system
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None
        self._cpu_before = 0.0

    def __enter__(self) -> LocustProcess:
        self._log = self.log_path.open("wb")
        self._cpu_before = children_cpu()
        self.started = time.time()
        self._proc = process.start(self.command, self._log, env=self.env)
        if self.latency:
            self.latency.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    @property
    def running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    @property
    def returncode(self) -> int | None:
        return self._proc.returncode if self._proc else None

    def wait(self, timeout: float) -> bool:
        """Wait up to timeout for Locust to end by itself; True when it has."""
        if self._proc is None:
            return True
        try:
            self._proc.wait(timeout)
        except subprocess.TimeoutExpired:
            return False
        return True

    def stop(self) -> None:
        """SIGINT (Locust then writes its CSV and HTML reports), SIGKILL as the last resort."""
        if self._proc is None:
            return
        if self._proc.poll() is None:
            self._proc.send_signal(signal.SIGINT)
            if not self.wait(STOP_GRACE):
                self._proc.kill()
                self._proc.wait()
        self.cpu_seconds = children_cpu() - self._cpu_before
        if self.latency:
            self.latency.stop()
        if self._log:
            self._log.close()
        self._proc = None

    def log_tail(self, lines: int = 15) -> str:
        return process.log_tail(self.log_path, lines)


def children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def live_totals(directory: Path) -> tuple[int, int] | None:
    """Requests and failures so far, from the last aggregated row Locust wrote."""
    path = directory / "locust_stats_history.csv"
    if not path.exists():
        return None
    with path.open(newline="") as f:
        rows = [r for r in csv.DictReader(f) if r.get("Name") == "Aggregated"]
    if not rows:
        return None
    return int(rows[-1]["Total Request Count"]), int(rows[-1]["Total Failure Count"])


def wait_with_progress(locust: LocustProcess, until: float, directory: Path, say: Say) -> None:
    """Wait until the epoch time `until` or Locust's end, with a progress line now and then."""
    next_line = time.time() + PROGRESS_EVERY

    def step() -> bool:
        nonlocal next_line
        ended = locust.wait(min(1.0, max(0.0, until - time.time())))
        if time.time() >= next_line:
            next_line += PROGRESS_EVERY
            totals = live_totals(directory)
            counted = f", {totals[0]:,} requests, {totals[1]:,} failed" if totals else ""
            say(f"  load: {time.time() - locust.started:.0f} s{counted}")
        return ended

    # Locust's own wait is the interval: the step returns as soon as Locust ends.
    poll(step, lambda ended: ended, timeout=max(0.0, until - time.time()), interval=0)
