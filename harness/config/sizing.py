"""PostgreSQL's memory and parallelism settings, derived from what a database node has.

One rule for the lab's nodes and an inventory's servers, so the lab measures the settings
production gets. The rule is for an OLTP mix of short statements from many clients: a quarter
of the memory as shared buffers, three quarters as the planner's cache estimate, work_mem
from what is left over the connections, and no parallel workers per query below four cores
(on two, a parallel count of a few thousand rows takes a second core from 100 users who each
need one; the CRM's dashboard did exactly that).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from harness.core.errors import ConfigError

MEMORY = re.compile(r"^(?P<number>\d+)(?P<unit>MB|GB|TB)$")
MEMORY_UNITS = {"MB": 1, "GB": 1024, "TB": 1024 * 1024}
MIN_MEMORY_MB = 256
MIN_WORK_MEM_MB = 4  # PostgreSQL's default: never less
MAX_MAINTENANCE_MB = 2048


def parse_memory_mb(text: str) -> int:
    """`512MB`, `16GB` or `1TB` (PostgreSQL's units, 1 GB = 1024 MB) to megabytes."""
    match = MEMORY.match(text.strip())
    if not match:
        raise ConfigError(f"memory {text!r} is not a size", "write it like 512MB, 16GB or 1TB")
    return int(match["number"]) * MEMORY_UNITS[match["unit"]]


def memory_text(mb: int) -> str:
    return f"{mb // 1024}GB" if mb % 1024 == 0 else f"{mb}MB"


@dataclass(frozen=True)
class NodeSize:
    """What one database node has for PostgreSQL."""

    cores: int
    memory_mb: int

    def __post_init__(self) -> None:
        if self.cores < 1:
            raise ConfigError(f"cores {self.cores}: a node has at least one", "e.g. cores: 8")
        if self.memory_mb < MIN_MEMORY_MB:
            raise ConfigError(
                f"memory {memory_text(self.memory_mb)} is below {MIN_MEMORY_MB}MB",
                "give the memory PostgreSQL may use on each database server, e.g. memory: 16GB",
            )

    def parameters(self, max_connections: int) -> dict[str, str]:
        shared = self.memory_mb // 4
        work_mem = max(MIN_WORK_MEM_MB, (self.memory_mb - shared) // (3 * max_connections))
        return {
            "shared_buffers": memory_text(shared),
            "effective_cache_size": memory_text(self.memory_mb * 3 // 4),
            "work_mem": memory_text(work_mem),
            "maintenance_work_mem": memory_text(min(MAX_MAINTENANCE_MB, self.memory_mb // 16)),
            "max_worker_processes": str(max(8, self.cores)),
            "max_parallel_workers": str(self.cores),
            "max_parallel_workers_per_gather": str(min(4, self.cores // 4)),
            "max_parallel_maintenance_workers": str(max(1, min(4, self.cores // 2))),
            # Random reads cost little more than sequential ones from memory or SSD; at the
            # default 4 the dashboard's message count chose a sequential scan of the month.
            "random_page_cost": "1.1",
        }


# The lab's three nodes share this machine's two cores; each may use 2 GB of its memory.
LAB_NODE = NodeSize(cores=2, memory_mb=2048)
SIZED = tuple(LAB_NODE.parameters(200))  # the settings a node's size decides
