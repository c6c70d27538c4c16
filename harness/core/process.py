"""The one place external commands are run, so every failure carries its evidence."""

from __future__ import annotations

import subprocess
from collections.abc import Mapping, Sequence

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
