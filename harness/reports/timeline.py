"""One timeline plot for every report: successes, errors and latency per time bin, with the
interesting stretches shaded and events marked. Chaos, load and migration reports draw it:
successes can be split by group (a line each), and a sampled gauge (a lag) gets a panel."""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True)
class Event:
    at: float  # seconds since the plot's origin
    ok: bool
    ms: float  # latency; only successful events count
    group: str = ""  # successes are drawn one line per group (where they landed, say)


@dataclass(frozen=True)
class Span:
    start: float
    end: float
    colour: str
    alpha: float = 0.15


def nearest_rank(ordered: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of ascending values; NaN when there are none."""
    if not ordered:
        return math.nan
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q / 100 * len(ordered)) - 1))]


def shade(axis: Any, spans: Sequence[Span], marks: Sequence[float]) -> None:
    """The house style for stretches and moments: every report's plots mark them alike."""
    for span in spans:
        axis.axvspan(span.start, span.end, color=span.colour, alpha=span.alpha)
    for at in marks:
        axis.axvline(at, color="purple", linestyle="--", linewidth=1)


def plot(
    events: Iterable[Event],
    path: Path,
    *,
    title: str,
    ok_label: str,
    latency_quantile: float,
    spans: Sequence[Span] = (),
    marks: Sequence[float] = (),
    bin_seconds: float = 1.0,
    log_latency: bool = False,
    gauge: tuple[str, Sequence[tuple[float, float]]] | None = None,  # label, (at, value)
) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    events = list(events)
    end = max([e.at for e in events] + [1.0])
    bins = int(end / bin_seconds) + 1
    groups = sorted({e.group for e in events if e.ok}) or [""]
    ok = {g: [0] * bins for g in groups}
    failed = [0] * bins
    latency: list[list[float]] = [[] for _ in range(bins)]
    for e in events:
        i = max(0, int(e.at / bin_seconds))
        if e.ok:
            ok[e.group][i] += 1
            latency[i].append(e.ms)
        else:
            failed[i] += 1
    xs = [i * bin_seconds for i in range(bins)]

    panels = 4 if gauge else 3
    fig, axes = plt.subplots(panels, 1, sharex=True, figsize=(11, 7 + 2 * (panels - 3)))
    top, middle, bottom = axes[0], axes[1], axes[2]
    for group, counts in ok.items():
        colour = "tab:green" if len(groups) == 1 else None
        top.plot(xs, [n / bin_seconds for n in counts], label=group or None, color=colour)
    if len(groups) > 1:
        top.legend(loc="upper right")
    top.set_ylabel(ok_label)
    middle.bar(xs, [n / bin_seconds for n in failed], width=bin_seconds, color="tab:red")
    middle.set_ylabel("errors/s")
    bottom.plot(xs, [nearest_rank(sorted(v), latency_quantile) for v in latency], color="tab:blue")
    bottom.set_ylabel(f"p{latency_quantile:g} ms")
    if log_latency:
        bottom.set_yscale("log")
    if gauge:
        label, points = gauge
        axes[3].plot([at for at, _ in points], [v for _, v in points], color="tab:purple")
        axes[3].set_ylabel(label)
    axes[-1].set_xlabel("seconds")
    for axis in axes:
        shade(axis, spans, marks)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)
