"""Randomness is checked, not trusted: a defense's ``randomized`` decides how it is attacked.

Why: a defense marked deterministic but random is attacked without EOT and evaluated on one draw
(its number is too high and irreproducible); one marked randomized but deterministic pays R
evaluation draws and EOT for nothing, and hides a bug in its randomness. AutoAttack's
``check_randomized`` only warns; mi-bench refuses, before any attack, with one line.

Forwards on the same images: two (up to four, while equal) through one wrapped model (fresh
draws per call must differ exactly when ``randomized``), and one through a second wrap with the
same seed (its output must equal the first: randomness only from ``wrap``'s seed, so a resumed run equals an
uninterrupted one).
"""

from __future__ import annotations

import torch
from torch import nn

from mi_bench.errors import UserError

# outputs closer than this are one output: GPU reductions may differ at rounding
ATOL = 1e-5
CALLS = 4  # forwards through one wrap before "they never differ" is believed


class RandomnessMismatch(UserError):
    """A defense's ``randomized`` flag contradicts what two forwards show."""


def check_randomness(defense, model: nn.Module, x: torch.Tensor, seed: int,
                     max_batch: int = 64) -> dict:
    """Refuse ``defense`` if its forwards contradict ``defense.randomized``; returns what it saw
    (``max_diff`` between two calls, ``replay_diff`` between two wraps with one seed)."""
    with torch.no_grad():
        wrapped = defense.wrap(model, seed, None, max_batch)
        first = wrapped(x)
        diff = 0.0
        for _ in range(CALLS - 1):  # a draw may leave a few images as they were: try again
            diff = max(diff, float((first - wrapped(x)).abs().max()))
            if diff > ATOL:
                break
        replay = defense.wrap(model, seed, None, max_batch)(x)
    replay_diff = float((first - replay).abs().max())
    name, n = defense.name, len(x)
    if defense.randomized and diff <= ATOL:
        raise RandomnessMismatch(
            f"defense {name} says randomized = True, but {CALLS} forwards on the same {n} images "
            "gave the same output: set randomized = False (it is then attacked without EOT and "
            "evaluated once), or draw fresh randomness on every call")
    if not defense.randomized and diff > ATOL:
        raise RandomnessMismatch(
            f"defense {name} says randomized = False, but two forwards on the same {n} images "
            f"differ (by up to {diff:.3g}): set randomized = True, so that it is evaluated over "
            "several draws and attacked with EOT")
    if replay_diff > ATOL:
        raise RandomnessMismatch(
            f"defense {name}: two wraps with the same seed gave different outputs (by up to "
            f"{replay_diff:.3g}); draw its randomness only from a torch.Generator seeded by "
            "wrap's seed, so that records are reproducible and a resumed run equals a whole one")
    return {"max_diff": diff, "replay_diff": replay_diff}
