"""The capacity plot: p95 (all requests and the slowest request type) and throughput against
the user count, the limit drawn across and the knee (the last step that held) marked."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Point:
    users: int
    rps: float
    p95: float  # all requests
    slowest_p95: float  # the request type with the highest p95
    slowest: str
    held: bool


def plot(
    points: Sequence[Point], path: Path, *, title: str, limit_ms: float, knee: int | None
) -> None:
    if not points:
        return
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import ScalarFormatter

    users = [p.users for p in points]
    fig, latency = plt.subplots(figsize=(11, 5))
    latency.plot(users, [p.p95 for p in points], "o-", color="tab:blue", label="p95, all requests")
    latency.plot(
        users,
        [p.slowest_p95 for p in points],
        "s--",
        color="tab:purple",
        label="p95, slowest request type",
    )
    for p in points:
        if not p.held:
            latency.plot([p.users], [max(p.p95, p.slowest_p95)], "x", color="tab:red", ms=12)
    if limit_ms == limit_ms:  # not NaN
        latency.axhline(limit_ms, color="tab:red", linestyle=":", label=f"limit {limit_ms:g} ms")
    latency.set_xlabel("users")
    latency.set_ylabel("p95 ms")
    latency.set_yscale("log")
    latency.yaxis.set_major_formatter(ScalarFormatter())
    latency.yaxis.set_minor_formatter(ScalarFormatter())
    throughput = latency.twinx()
    throughput.plot(users, [p.rps for p in points], "^-", color="tab:green", label="requests/s")
    throughput.set_ylabel("requests/s")
    throughput.set_ylim(bottom=0)
    if knee is not None:
        latency.axvline(knee, color="black", linestyle="--", linewidth=1)
        at = next(p for p in points if p.users == knee)
        latency.annotate(
            f"knee: {knee} users, {at.rps:.0f} req/s",
            xy=(knee, at.p95),
            xytext=(8, 12),
            textcoords="offset points",
        )
    handles = latency.get_legend_handles_labels()[0] + throughput.get_legend_handles_labels()[0]
    latency.legend(handles=handles, loc="upper left")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
