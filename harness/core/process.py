"""The one place external commands are run, so every failure carries its evidence.

`run` waits for a command and returns its output; `start` leaves one running in the
background with its output in a log file; `replace` hands this process over to an
interactive command (psql), so the terminal and the exit code are the command's own."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import IO, NoReturn

from harness.core.errors import CommandError


def run(
    command: Sequence[str],
    *,
    timeout: float = 600,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    hint: str = "",
) -> str:
    """Run a command to completion and return its stdout; raise CommandError on failure."""
    try:
        done = subprocess.run(
            list(command),
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            env=dict(env) if env is not None else None,
            check=False,
        )
    except FileNotFoundError as exc:
        raise CommandError(command, 127, str(exc), hint) from exc
    except subprocess.TimeoutExpired as exc:
        stderr = exc.stderr.decode() if isinstance(exc.stderr, bytes) else (exc.stderr or "")
        raise CommandError(command, -1, f"timed out after {timeout:.0f} s\n{stderr}", hint) from exc
    if done.returncode != 0:
        raise CommandError(command, done.returncode, done.stderr or done.stdout, hint)
    return done.stdout


def start(
    command: Sequence[str],
    log: IO[bytes],
    *,
    env: Mapping[str, str] | None = None,
    detached: bool = False,
) -> subprocess.Popen[bytes]:
    """Start a command in the background, stdout and stderr into `log`, no stdin.

    `detached` puts it in a session of its own, so a Ctrl-C here does not reach it (a
    daemon that must outlive this command)."""
    try:
        return subprocess.Popen(
            list(command),
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env) if env is not None else None,
            start_new_session=detached,
        )
    except FileNotFoundError as exc:
        raise CommandError(command, 127, str(exc)) from exc


def replace(command: Sequence[str], env: Mapping[str, str]) -> NoReturn:
    """Become the command: it gets this terminal, and its exit code is ours."""
    try:
        os.execvpe(command[0], list(command), dict(env))
    except FileNotFoundError as exc:
        raise CommandError(command, 127, str(exc)) from exc


def log_tail(path: Path, lines: int = 15) -> str:
    """The last lines a background command wrote."""
    text = path.read_text(errors="replace") if path.exists() else ""
    return "\n".join(text.strip().splitlines()[-lines:])
