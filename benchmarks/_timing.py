"""Timing helpers shared by the benchmarks: interleaved pairs and medians of per-pair ratios."""

from __future__ import annotations

import statistics
import time


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def paired(fa, fb, repeats: int) -> tuple[float, float, float]:
    """Median seconds of fa and fb, and the median of the per-pair ratios fa/fb.

    Interleaving puts load from other processes on both sides alike; one warm-up call each.
    """
    fa(), fb()
    pairs = [(seconds(fa), seconds(fb)) for _ in range(repeats)]
    return (statistics.median(a for a, _ in pairs), statistics.median(b for _, b in pairs),
            statistics.median(a / b for a, b in pairs))

