"""Start-up and memory figures for the lab, printed, never asserted.

Runs as its own Compose project on its own ports, so a running dev lab is untouched
(except with --cold, which deletes the shared images to rebuild them from nothing).

    python -m benchmarks.startup            # warm: images cached, fresh volumes
    python -m benchmarks.startup --cold     # also rebuild the base image and every image
"""

from __future__ import annotations

import argparse
import time

from harness.lab.presets import get_preset
from harness.lab.project import Lab, shifted_ports
from harness.provision.up import bring_up
from harness.stack.engine import BASE_IMAGE, Engine
from harness.stack.lifecycle import Stack, UpReport

BENCH_SETTINGS = {"GARDENLAB_PROJECT": "gardenlab-bench", **shifted_ports(20000)}
IMAGES = (
    "gardenlab/postgres:17",
    "gardenlab/etcd:3.5",
    "gardenlab/haproxy:3.0",
    "gardenlab/pgbouncer:1.24",
    "gardenlab/faultproxy:1",
)
MIB = 1024 * 1024


def timed_up(stack: Stack) -> UpReport:
    return bring_up(stack, get_preset("fast"), 300, ensure_engine=Engine().ensure).up


def print_report(title: str, report: UpReport) -> None:
    phases = "  ".join(f"{k} {v:5.1f}" for k, v in report.phases.items())
    print(f"{title:<34} total {sum(report.phases.values()):6.1f} s   {phases}")


def memory_mib(stack: Stack) -> dict[str, float]:
    running = [c.name for c in stack.containers() if c.running]
    return {name: used / MIB for name, used in stack.runtime.memory_used(running).items()}


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
            stack.runtime.remove(images=[*IMAGES, BASE_IMAGE])
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
