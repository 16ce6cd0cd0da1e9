"""Selection draws and scoring draws: choose on one set, report on another.

A randomized defense is right on an image with some probability, estimated from draws of the
defense. Keeping, per image, the candidate point with the lowest estimate and reporting that same
estimate is biased low (the minimum of noisy estimates), so every evaluation of a point uses two
sets of draws that never mix:

- **selection draws** (S of them): the only draws a choice inside a record reads: which
  member's point the ensemble keeps, when a point counts as broken; and which setting a cell
  shows (its records' selection means over all images);
- **scoring draws** (R fresh ones): the only draws a reported number reads, and the held-out
  halves the choice between records (below) reads.

The robust score of an image is the scoring-draw accuracy at the candidate whose selection-draw
accuracy is lowest; the candidates are the clean image itself (it lies in the threat ball) and
every attack's point. Ties between the clean image and a point go to the point (the attack's
answer, and the candidate meant to be lower: a tie at 0 of S keeps the broken point, not a clean
image that happened to read 0), ties between the points of one run to the earliest, and ties
between runs (worst over attacks) to the run lowest on selection draws over all its images: the
attack an attacker would deploy, judged without a scoring draw. A deterministic
model has S = R = 1 and the same array in both roles: its numbers are those of ``adv & clean``.

**A choice between records reads held-out scoring draws** (``held_out_worst``). Within a record,
the ensemble has already chosen its points on the record's selection draws, so those read low at
the points it kept (measured on IAT + MI-OL, K = 15: 29.2 on selection against 32.3 on scoring
draws) and a per-image choice between records on them favours the ensemble whatever its true
accuracy. The worst over attacks therefore chooses on scoring draws, cross-fitted: the R
scoring draws split into even and odd ones; per image, the candidate (the clean image, each
run's point) lowest on one half is read on the other half, and the other way round, each half
weighing by its draws. No reading is of a draw its own choice saw, so each half is unbiased for
the attack that chooses that way, and no record's own choices took part. (Leave-one-out,
choosing on R - 1 draws per draw, chooses on more draws but its terms correlate: on a synthetic
row of ten like runs its number spread 1.38 times the halves' over trials, measured by
``benchmarks/draws.py``.) A deterministic row (R = 1, no noise) keeps ``worst_scores``; so does
a randomized one with a single scoring draw.

The streams are seeded from the record's identity, the batch, the role and the candidate, so
the scoring draws of two records (two attacks of one seed, say) are independent, and both are
independent of the clean evaluation's draws and of the attack's own randomness.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np

ROLES = ("select", "score")


@dataclass
class Draws:
    """Correctness of one candidate per image: ``select`` (S, b) and ``score`` (R, b), bool."""

    select: np.ndarray
    score: np.ndarray

    def __post_init__(self) -> None:
        self.select = np.asarray(self.select, bool)
        self.score = np.asarray(self.score, bool)
        if self.select.shape[1:] != self.score.shape[1:]:
            raise ValueError(f"selection draws {self.select.shape} and scoring draws "
                             f"{self.score.shape} cover different images")

    def take(self, idx: np.ndarray) -> Draws:
        return Draws(self.select[:, idx], self.score[:, idx])

    def put(self, idx: np.ndarray, other: Draws) -> None:
        self.select[:, idx], self.score[:, idx] = other.select, other.score

    def copy(self) -> Draws:
        return Draws(self.select.copy(), self.score.copy())


def pick_lower(best: Draws, cand: Draws, best_is_clean: np.ndarray | bool = False) -> np.ndarray:
    """Where the point ``cand`` replaces ``best`` on selection draws alone: lower, or level
    where ``best`` is still the clean image."""
    a, b = cand.select.mean(0), best.select.mean(0)
    return (a < b) | ((a == b) & best_is_clean)


def keep_worst(candidates: list[Draws]) -> tuple[Draws, np.ndarray]:
    """Per image the candidate with the lowest selection-draw accuracy, and which candidate
    that is (0: ``candidates[0]``, the clean image; ties as the module says). The choice reads
    no scoring draw."""
    best, which = candidates[0].copy(), np.zeros(candidates[0].select.shape[1], dtype=np.int16)
    for i, cand in enumerate(candidates[1:], 1):
        lower = np.flatnonzero(pick_lower(best, cand, which == 0))
        best.put(lower, cand.take(lower))
        which[lower] = i
    return best, which


def worst_scores(select: np.ndarray, score: np.ndarray) -> np.ndarray:
    """Per image (columns), the score of the candidate (rows; row 0 the clean image, then the
    runs) with the lowest selection mean, ties as the module says: ``select`` and ``score`` are
    (candidates, n) per-image means over their own draws."""
    select, score = np.asarray(select, float), np.asarray(score, float)
    cols = np.arange(select.shape[1])
    if len(select) == 1:
        return score[0]
    order = 1 + np.argsort(select[1:].mean(1), kind="stable")  # the strongest run first
    run = order[np.argmin(select[order], axis=0)]  # the lowest run, the strongest on ties
    keep_clean = select[0] < select[run, cols]
    return np.where(keep_clean, score[0], score[run, cols])


def held_out_worst(candidates: list[np.ndarray]) -> np.ndarray:
    """Per image (columns), the worst over ``candidates`` (each its (R_c, n) scoring draws; the
    clean image first, then the runs), cross-fitted as the module says: the first R draws of
    each (R the smallest R_c) split into even and odd draws; choose per image on one half
    (``worst_scores``' ties), read the other, and the other way round; each half weighs by its
    draws. Needs at least two draws per candidate."""
    draws = [np.asarray(c, float) for c in candidates]
    r = min(len(d) for d in draws)
    if r < 2:
        raise ValueError(f"a held-out choice needs two scoring draws per candidate, got {r}")
    halves = (np.arange(0, r, 2), np.arange(1, r, 2))
    total = np.zeros(draws[0].shape[1])
    for choose, read in (halves, halves[::-1]):
        total += len(read) * worst_scores(np.stack([d[choose].mean(0) for d in draws]),
                                          np.stack([d[read].mean(0) for d in draws]))
    return total / r


def stream(identity: str, batch: int, role: str, candidate: int = 0) -> int:
    """The seed of one stream of draws: a record's identity (its key), a batch, a role
    (``select``/``score``) and a candidate (0: the suite's one point; i: member i)."""
    if role not in ROLES:
        raise ValueError(f"role {role!r} is not one of {ROLES}")
    digest = hashlib.sha256(identity.encode()).hexdigest()
    words = [int(digest[i:i + 8], 16) for i in range(0, 32, 8)]
    seq = np.random.SeedSequence([*words, batch, ROLES.index(role), candidate])
    return int(seq.generate_state(1)[0])
