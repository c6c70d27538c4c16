"""Start-up and memory figures for the lab, printed, never asserted.

Runs as its own Compose project on its own ports, so a running dev lab is untouched
(except with --cold, which deletes the shared images to rebuild them from nothing).

    python -m benchmarks.startup            # warm: images cached, fresh volumes
    python -m benchmarks.startup --cold     # also rebuild the base image and every image
"""

from __future__ import annotations

import argparse
import time

from python_on_whales import DockerClient

from harness.lab.presets import get_preset
from harness.lab.project import Lab
from harness.stack.engine import BASE_IMAGE, Engine
from harness.stack.lifecycle import Stack, UpReport

BENCH_SETTINGS = {
    "GARDENLAB_PROJECT": "gardenlab-bench",
    "GARDENLAB_RW_PORT": "25000",
    "GARDENLAB_RO_PORT": "25001",
    "GARDENLAB_POOLER_PORT": "26432",
    "GARDENLAB_STATS_PORT": "27000",
    "GARDENLAB_PG1_REST_PORT": "28008",
    "GARDENLAB_PG2_REST_PORT": "28009",
    "GARDENLAB_PG3_REST_PORT": "28010",
    "GARDENLAB_FAULTPROXY_PORT": "28474",
    "GARDENLAB_PROXIED_RW_PORT": "25010",
    "GARDENLAB_PROXIED_RO_PORT": "25011",
    "GARDENLAB_PROXIED_POOLER_PORT": "26442",
}
IMAGES = (
    "gardenlab/postgres:17",
    "gardenlab/etcd:3.5",
    "gardenlab/haproxy:3.0",
    "gardenlab/pgbouncer:1.24",
    "gardenlab/faultproxy:1",
)
MIB = 1024 * 1024


def timed_up(stack: Stack) -> UpReport:
    return stack.up(
        get_preset("fast"), 300, ensure_engine=Engine().ensure, on_build_line=lambda _: None
    )


def print_report(title: str, report: UpReport) -> None:
    phases = "  ".join(f"{k} {v:5.1f}" for k, v in report.phases.items())
    print(f"{title:<34} total {sum(report.phases.values()):6.1f} s   {phases}")


def memory_mib(stack: Stack) -> dict[str, float]:
    containers = [c for c in stack.containers() if c.state.running]
    return {s.container_name: s.memory_used / MIB for s in DockerClient().stats(containers)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cold", action="store_true", help="delete images and base image first")
    parser.add_argument(
        "--settle", type=float, default=15.0, help="seconds before measuring memory"
    )
    args = parser.parse_args()

    base = Lab.discover()
    stack = Stack(Lab(root=base.root, settings={**base.settings, **BENCH_SETTINGS}), say=print)
    try:
        stack.down(volumes=True)
        if args.cold:
            DockerClient().image.remove([*IMAGES, BASE_IMAGE], force=True, prune=True)
            print_report("cold (base image + build + boot)", timed_up(stack))
            stack.down(volumes=True)
        print_report("warm (images cached, new volumes)", timed_up(stack))
        stack.down(volumes=False)
        print_report("restart (images and data kept)", timed_up(stack))
        print_report("up again on a running stack", timed_up(stack))
        time.sleep(args.settle)
        usage = memory_mib(stack)
        for name, mib in sorted(usage.items()):
            print(f"  {name:<32} {mib:7.1f} MiB")
        print(f"{'memory of the running stack':<34} {sum(usage.values()):7.1f} MiB")
    finally:
        stack.down(volumes=True)


if __name__ == "__main__":
    main()
