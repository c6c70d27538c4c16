"""The one percentile the benchmarks print: nearest rank, so a handful of runs give real
observations rather than interpolated ones."""

from __future__ import annotations


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]
