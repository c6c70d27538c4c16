"""Panels of metric lines over time, in the timeline's style (its shading and marks): what the
dashboard draws from Prometheus, and what a chaos or load report can add for its own window."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from harness.reports.timeline import Span, shade

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure


@dataclass(frozen=True)
class Line:
    label: str
    points: tuple[tuple[float, float], ...]  # (seconds since the plot's origin, value)


@dataclass(frozen=True)
class Bar:
    """A stretch one named thing was on: an alert firing, say."""

    label: str
    start: float
    end: float


def _figure(title: str) -> tuple[Figure, Axes]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axis = plt.subplots(figsize=(11, 3.6))
    axis.set_title(title)
    return fig, axis


def _save(fig: Figure, axis: Axes, path: Path, end: float) -> None:
    import matplotlib.pyplot as plt

    axis.set_xlim(0, max(end, 1.0))
    axis.set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


def plot_lines(
    lines: Sequence[Line],
    path: Path,
    *,
    title: str,
    ylabel: str,
    end: float,
    spans: Sequence[Span] = (),
    marks: Sequence[float] = (),
    steps: bool = False,
) -> None:
    """One panel; a panel without data says so rather than drawing an empty frame."""
    fig, axis = _figure(title)
    for line in lines:
        xs = [x for x, _ in line.points]
        ys = [y for _, y in line.points]
        if steps:
            axis.step(xs, ys, where="post", label=line.label)
        else:
            axis.plot(xs, ys, label=line.label)
    if lines:
        axis.legend(loc="upper left", fontsize="small", ncol=4)
    else:
        axis.text(0.5, 0.5, "no data", ha="center", transform=axis.transAxes)
    axis.set_ylabel(ylabel)
    shade(axis, spans, marks)
    _save(fig, axis, path, end)


def plot_bars(
    bars: Sequence[Bar],
    path: Path,
    *,
    title: str,
    end: float,
    marks: Sequence[float] = (),
) -> None:
    """One row per label, a bar per stretch: alerts as the spans they fired."""
    fig, axis = _figure(title)
    labels = sorted({b.label for b in bars})
    for row, label in enumerate(labels):
        stretches = [(b.start, b.end - b.start) for b in bars if b.label == label]
        axis.broken_barh(stretches, (row - 0.4, 0.8), color="tab:red", alpha=0.6)
    axis.set_yticks(range(len(labels)), labels, fontsize="small")
    if not labels:
        axis.text(0.5, 0.5, "no alert fired", ha="center", transform=axis.transAxes)
    shade(axis, (), marks)
    _save(fig, axis, path, end)
