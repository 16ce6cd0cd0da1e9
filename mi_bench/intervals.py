"""95% intervals over images for accuracies, so a reader can tell a gain from sampling noise.

An accuracy here is the mean over n test images of a per-example score in [0, 1]: the share of
(seed, draw) pairs in which the example was right. With one draw and one seed every score is 0
or 1 and the Wilson score interval is used; otherwise a percentile bootstrap over images (the
draws and seeds of an image stay together, since they are not independent of each other).
The spread over seeds is a different quantity (attack and defense randomness on fixed images)
and is reported beside the interval, never instead of it.
"""

from __future__ import annotations

import math

import numpy as np

LEVEL = 0.95
N_BOOT = 2000


def wilson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Wilson score interval for k successes out of n."""
    if n <= 0:
        return math.nan, math.nan
    z = _z(level)
    if k == 0 or k == n:  # the closed forms, exact at the edges
        bound = z * z / (n + z * z)
        return (0.0, bound) if k == 0 else (1.0 - bound, 1.0)
    p = k / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)


def bootstrap(scores: np.ndarray, level: float = LEVEL, n_boot: int = N_BOOT,
              seed: int = 0, bounds: tuple[float, float] = (0.0, 1.0)) -> tuple[float, float]:
    """Percentile bootstrap of the mean of ``scores`` (one value per image), seeded.

    Where every score is the same value c (every paired difference zero, say) the bootstrap
    collapses to a point. The interval is then c moved towards each of ``bounds`` by the
    rule-of-three share of images that could differ (Wilson's bound at k = 0): a paired
    difference of accuracies has bounds (-1, 1)."""
    scores = np.asarray(scores, dtype=float)
    n = len(scores)
    if n == 0:
        return math.nan, math.nan
    if np.ptp(scores) == 0:
        c, share = float(scores[0]), wilson(0, n, level)[1]
        return c - share * (c - bounds[0]), c + share * (bounds[1] - c)
    rng = np.random.default_rng(seed)
    means = scores[rng.integers(0, n, size=(n_boot, n))].mean(axis=1)
    alpha = (1 - level) / 2
    return float(np.quantile(means, alpha)), float(np.quantile(means, 1 - alpha))


def interval(scores: np.ndarray, level: float = LEVEL) -> tuple[float, float]:
    """Wilson when every score is 0 or 1 (one draw, one seed), else the bootstrap."""
    scores = np.asarray(scores, dtype=float)
    if np.all((scores == 0) | (scores == 1)):
        return wilson(int(scores.sum()), len(scores), level)
    return bootstrap(scores, level)


def paired_points(differences: np.ndarray) -> str:
    """A paired per-image difference of accuracies, in points with its bootstrap interval:
    ``+1.5 [-0.4, +3.2]`` (the leaderboards' K and convergence tables)."""
    d = np.asarray(differences, dtype=float)
    lo, hi = bootstrap(d, bounds=(-1.0, 1.0))
    return f"{100 * d.mean():+.1f} [{100 * lo:+.1f}, {100 * hi:+.1f}]"


def _z(level: float) -> float:
    """Two-sided normal quantile (stdlib only): 1.96 at 95%."""
    from statistics import NormalDist

    return NormalDist().inv_cdf(1 - (1 - level) / 2)
