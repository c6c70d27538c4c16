"""Every error the harness raises on purpose, in one place.

Each carries a message saying what is wrong and a hint saying how to fix it;
the CLI prints both and exits non-zero, never a traceback.

    HarnessError
    ├── ConfigError        bad preset, flag or .env value
    ├── EngineError        no container engine and none installable
    ├── PortInUseError     a published port is taken by something else
    ├── StateError         leftovers that would lose data if we went on
    ├── CommandError       an external command failed (carries its evidence)
    │   └── ContainerGone  the container asked for is not there (removed, never made)
    ├── PatroniUnavailable no Patroni REST endpoint answered
    ├── BackupError        no usable backup for what was asked (the cluster is left alone)
    └── ReadinessTimeout   a wait ran past its deadline
"""

from __future__ import annotations

from collections.abc import Sequence


def first_line(exc: BaseException) -> str:
    """The gist of a client library's error, for a one-line message."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


class HarnessError(Exception):
    """Base of every deliberate harness error."""

    exit_code = 1

    def __init__(self, message: str, hint: str = "") -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message}\n  hint: {self.hint}" if self.hint else self.message


class ConfigError(HarnessError):
    exit_code = 2


class EngineError(HarnessError):
    pass


class PortInUseError(HarnessError):
    def __init__(self, name: str, port: int, env_var: str) -> None:
        super().__init__(
            f"port {port} ({name}) on 127.0.0.1 is already in use by another program",
            f"stop that program, or move the port: {env_var}=<port> in .env or the environment",
        )
        self.port = port


class StateError(HarnessError):
    pass


class CommandError(HarnessError):
    """An external command failed; keeps the command, exit code and stderr as evidence."""

    def __init__(
        self, command: Sequence[str], returncode: int, stderr: str, hint: str = ""
    ) -> None:
        tail = "\n".join(stderr.strip().splitlines()[-15:])
        super().__init__(
            f"command failed (exit {returncode}): {' '.join(command)}\n{tail}".rstrip(), hint
        )
        self.command = list(command)
        self.returncode = returncode
        self.stderr = stderr


class ContainerGone(CommandError):
    """Docker answered that the container does not exist: a state the caller may expect."""


class PatroniUnavailable(HarnessError):
    pass


class BackupError(HarnessError):
    pass


class ReadinessTimeout(HarnessError):
    """A wait ran past its deadline: what was awaited, what was last seen, and the logs."""

    def __init__(self, awaited: str, seconds: float, last_state: str, log_tail: str) -> None:
        super().__init__(
            f"timed out after {seconds:.0f} s waiting for {awaited}\n"
            f"last state seen:\n{last_state}\n"
            f"recent logs:\n{log_tail}".rstrip(),
            "see `make logs`; `make dev-down` then `make dev-up` retries from a clean start",
        )
        self.awaited = awaited
        self.last_state = last_state
