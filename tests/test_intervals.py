"""95% intervals over images: Wilson for 0/1 scores, a seeded bootstrap otherwise."""

import numpy as np
import pytest

from mi_bench.intervals import bootstrap, interval, wilson


def test_wilson_matches_the_textbook_values():
    # 50/100: 0.5 +- ~0.096 (Wilson), and the interval stays inside [0, 1] at the edges
    lo, hi = wilson(50, 100)
    assert lo == pytest.approx(0.4038, abs=1e-3) and hi == pytest.approx(0.5962, abs=1e-3)
    assert wilson(0, 20)[0] == 0.0 and 0.1 < wilson(0, 20)[1] < 0.2
    assert wilson(20, 20)[1] == 1.0


def test_bootstrap_is_seeded_and_covers_the_mean():
    rng = np.random.default_rng(1)
    scores = rng.uniform(0, 1, 200)
    a, b = bootstrap(scores), bootstrap(scores)
    assert a == b and a[0] < scores.mean() < a[1]
    # about 1.96 standard errors each side
    se = scores.std(ddof=1) / np.sqrt(len(scores))
    assert (a[1] - a[0]) == pytest.approx(2 * 1.96 * se, rel=0.15)


def test_interval_picks_wilson_for_binary_scores():
    binary = np.array([1, 0, 1, 1, 0, 1, 1, 1.0])
    assert interval(binary) == wilson(6, 8)
    assert interval(np.array([1, 0.8, 0.2, 1])) == bootstrap(np.array([1, 0.8, 0.2, 1]))
