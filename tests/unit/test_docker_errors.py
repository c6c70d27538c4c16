"""Docker's failures leave the runtime as our errors, with their evidence, and a vanished
container as a condition of its own; a container is read from the engine's inspect JSON."""

from __future__ import annotations

import pytest
from python_on_whales.exceptions import DockerException

from harness.clients.docker import container_from_inspect, docker_errors
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


def test_a_container_is_read_from_the_engines_inspect_json() -> None:
    inspected = {
        "Id": "abc",
        "Name": "/gardenlab-pg1-1",
        "Config": {"Labels": {"com.docker.compose.service": "pg1"}},
        "State": {"Status": "paused", "Running": True, "Paused": True},
        "NetworkSettings": {
            "Networks": {"db": {"IPAddress": "10.0.0.2"}, "gone": {"IPAddress": ""}},
            "Ports": {"5432/tcp": [{"HostIp": "127.0.0.1", "HostPort": "5432"}], "8008/tcp": None},
        },
    }
    container = container_from_inspect(inspected)
    assert (container.name, container.service, container.status) == (
        "gardenlab-pg1-1",
        "pg1",
        "paused",
    )
    assert container.running and container.paused and not container.serving
    assert container.addresses == ("10.0.0.2",) and container.host_ports == {5432}
    bare = container_from_inspect({"Id": "x", "Name": "/lonely", "State": {}})
    assert bare.service == "lonely" and bare.status == "unknown" and not bare.running
