"""Docker's failures leave the runtime as our errors, with their evidence, and a vanished
container as a condition of its own."""

from __future__ import annotations

import pytest
from python_on_whales.exceptions import DockerException

from harness.clients.docker import docker_errors
from harness.core.errors import CommandError, ContainerGone


def failing(stderr: bytes) -> DockerException:
    return DockerException(["docker", "container", "kill", "pg1"], 1, b"", stderr)


def test_a_failure_carries_command_exit_code_and_stderr() -> None:
    with pytest.raises(CommandError) as info, docker_errors("try again"):
        raise failing(b"permission denied while trying to connect")
    error = info.value
    assert not isinstance(error, ContainerGone)
    assert (error.command, error.returncode) == (["docker", "container", "kill", "pg1"], 1)
    assert "permission denied" in error.stderr and error.hint == "try again"


def test_a_vanished_container_is_named_as_such() -> None:
    with pytest.raises(ContainerGone), docker_errors():
        raise failing(b"Error response from daemon: No such container: pg1")


def test_streamed_commands_keep_the_evidence_they_collected() -> None:
    with (
        pytest.raises(CommandError, match="E: Unable to locate package"),
        docker_errors(
            evidence=lambda: "Step 3/5 : RUN apt-get install x\nE: Unable to locate package x"
        ),
    ):
        raise failing(b"")
