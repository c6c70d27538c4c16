"""The real stack, as its own Compose project on its own ports, so a developer's lab is never
touched. Brought up once per session and always torn down, volumes included, even when
bring-up fails; whatever an interrupted earlier session left of this disposable project is
removed first. Shared by the integration and chaos suites.

Tests do not depend on their order: every test (and every module fixture) that uses the
stack first makes sure it is up and healthy, so one that takes it down leaves nothing
broken for the next."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.data.crmdata import CrmData
from harness.data.scales import resolve_counts
from harness.data.seed import seed
from harness.lab.presets import get_preset
from harness.lab.project import Lab, shifted_ports
from harness.provision import up as provision
from harness.stack.engine import Engine
from harness.stack.lifecycle import Stack

# Every published port 10000 up: 15000 rw, 15001 ro, 16432 PgBouncer, 18008-18010 REST...
TEST_SETTINGS = {"GARDENLAB_PROJECT": "gardenlab-test", **shifted_ports(10000)}
READY_TIMEOUT = 240.0


def bring_up(stack: Stack) -> None:
    """What `make dev-up` does: the stack, the stanza, the schema."""
    provision.bring_up(stack, get_preset("fast"), READY_TIMEOUT, ensure_engine=Engine().ensure)


def seed_small(stack: Stack, *, reset: bool = False, seed_value: int = 42) -> str:
    """The CRM at the small scale, as `make seed` loads it; the seed run's outcome."""
    data = CrmData(seed_value, resolve_counts("small"))
    return seed(stack.lab.dsn("rw"), data, reset=reset, force=False).outcome


def ready(stack: Stack) -> Stack:
    """The stack, brought up again when an earlier test left it down or unhealthy."""
    if not stack.status().healthy:
        bring_up(stack)
    return stack


@pytest.fixture(autouse=True)
def stack_ready(request: pytest.FixtureRequest) -> None:
    if "stack" in request.fixturenames:
        ready(request.getfixturevalue("stack"))


@pytest.fixture(scope="session")
def test_env() -> dict[str, str]:
    """The environment a CLI subprocess needs to address the test project."""
    return {**os.environ, **TEST_SETTINGS}


@pytest.fixture(scope="session")
def stack(request: pytest.FixtureRequest) -> Iterator[Stack]:
    base = Lab.discover()
    lab = Lab(root=base.root, settings={**base.settings, **TEST_SETTINGS})
    stack = Stack(lab)
    Engine().ensure()
    reuse = bool(request.config.getoption("--reuse-stack"))
    if not reuse:
        stack.down(volumes=True)
    try:
        if reuse and stack.containers():
            ready(stack)
        else:
            bring_up(stack)
        yield stack
    finally:
        if not reuse:
            stack.down(volumes=True)
