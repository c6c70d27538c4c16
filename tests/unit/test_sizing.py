"""Memory and parallelism settings derived from a node's size: one rule for lab and servers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import pytest

from harness.config.render import COMPOSE_SITE, dcs_config, lab_live_parameters
from harness.config.sizing import LAB_NODE, NodeSize, parse_memory_mb
from harness.core.errors import ConfigError
from harness.lab.presets import get_preset


def test_the_lab_node_two_cores_two_gigabytes() -> None:
    assert LAB_NODE.parameters(200) == {
        "shared_buffers": "512MB",
        "effective_cache_size": "1536MB",
        "work_mem": "4MB",  # (2048 - 512) / 600 is below PostgreSQL's default
        "maintenance_work_mem": "128MB",
        "max_worker_processes": "8",
        "max_parallel_workers": "2",
        "max_parallel_workers_per_gather": "0",  # two cores: no second core for one query
        "max_parallel_maintenance_workers": "1",
        "random_page_cost": "1.1",
    }


def test_a_larger_server() -> None:
    sized = NodeSize(cores=16, memory_mb=64 * 1024).parameters(400)
    assert sized["shared_buffers"] == "16GB"
    assert sized["effective_cache_size"] == "48GB"
    assert sized["work_mem"] == "40MB"
    assert sized["maintenance_work_mem"] == "2GB"
    assert sized["max_parallel_workers_per_gather"] == "4"
    assert sized["max_worker_processes"] == "16"


def test_explicit_settings_win_and_connections_size_work_mem() -> None:
    given = replace(COMPOSE_SITE, resources=(("shared_buffers", "1GB"),))
    assert given.parameters()["shared_buffers"] == "1GB"
    many = replace(COMPOSE_SITE, size=NodeSize(4, 8192))
    few = replace(many, resources=(("max_connections", "50"),))
    assert parse_memory_mb(few.parameters()["work_mem"]) > parse_memory_mb(
        many.parameters()["work_mem"]
    )


def test_the_rendering_and_up_carry_the_sizing() -> None:
    parameters = dcs_config(get_preset("fast"))["postgresql"]["parameters"]
    assert LAB_NODE.parameters(200).items() <= parameters.items()
    assert LAB_NODE.parameters(200).items() <= lab_live_parameters().items()


@pytest.mark.parametrize(("text", "mb"), [("512MB", 512), ("16GB", 16384), ("1TB", 1048576)])
def test_memory_sizes(text: str, mb: int) -> None:
    assert parse_memory_mb(text) == mb


@pytest.mark.parametrize(
    ("make", "says"),
    [
        (lambda: parse_memory_mb("16G"), "not a size"),
        (lambda: NodeSize(0, 4096), "at least one"),
        (lambda: NodeSize(2, 128), "below 256MB"),
    ],
)
def test_sizes_that_make_no_sense_are_refused(make: Callable[[], object], says: str) -> None:
    with pytest.raises(ConfigError, match=says):
        make()
