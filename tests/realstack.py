"""The real stack, as its own Compose project on its own ports, so a developer's lab is never
touched. Brought up once per session and always torn down, volumes included, even when
bring-up fails. Shared by the integration and chaos suites."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from harness.lab.presets import get_preset
from harness.lab.project import Lab
from harness.stack.engine import Engine
from harness.stack.lifecycle import Stack

TEST_SETTINGS = {
    "GARDENLAB_PROJECT": "gardenlab-test",
    "GARDENLAB_RW_PORT": "15000",
    "GARDENLAB_RO_PORT": "15001",
    "GARDENLAB_POOLER_PORT": "16432",
    "GARDENLAB_STATS_PORT": "17000",
    "GARDENLAB_PG1_REST_PORT": "18008",
    "GARDENLAB_PG2_REST_PORT": "18009",
    "GARDENLAB_PG3_REST_PORT": "18010",
    "GARDENLAB_FAULTPROXY_PORT": "18474",
    "GARDENLAB_PROXIED_RW_PORT": "15010",
    "GARDENLAB_PROXIED_RO_PORT": "15011",
    "GARDENLAB_PROXIED_POOLER_PORT": "16442",
    "GARDENLAB_KONG_PORT": "18000",
    "GARDENLAB_META_PORT": "18080",
    "GARDENLAB_STUDIO_PORT": "13000",
}
READY_TIMEOUT = 240.0


def bring_up(stack: Stack) -> None:
    stack.up(
        get_preset("fast"),
        READY_TIMEOUT,
        ensure_engine=Engine().ensure,
        on_build_line=lambda line: None,
    )


@pytest.fixture(scope="session")
def test_env() -> dict[str, str]:
    """The environment a CLI subprocess needs to address the test project."""
    return {**os.environ, **TEST_SETTINGS}


@pytest.fixture(scope="session")
def stack() -> Iterator[Stack]:
    base = Lab.discover()
    lab = Lab(root=base.root, settings={**base.settings, **TEST_SETTINGS})
    stack = Stack(lab)
    try:
        bring_up(stack)
        yield stack
    finally:
        stack.down(volumes=True)
