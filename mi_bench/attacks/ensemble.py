"""AutoAttack for randomized defenses: every point attacked by every member, on many draws.

pyautoattack's published ``rand`` version fits a deterministic model better than a randomized
one: it never attacks a point that one clean draw misclassified, it returns the clean image for
every point it did not break, and APGD keeps the iterate (and halves its step) on the logits of
the last EOT sample, one draw of the defense. An R-draw evaluation then credits points that were
never attacked. This ensemble removes all three:

- every point right on its clean image in at least one selection draw is attacked by every
  member, to the end of its budget, until it is wrong in every one of S selection draws
  (checked after each member); nothing is skipped on the word of one draw;
- APGD-CE and APGD-DLR (pyautoattack's own ``APGDAttack``, in its keep-the-highest-loss mode)
  attack the defense with K x EOT draws inside one forward, as Tramer et al. (2020) attacked MI,
  so the loss APGD tracks for its iterate, step size and restarts is a many-draw estimate;
- EOT-PGD with CE and with a margin loss on the log of the defense's mean output (fresh K draws
  per gradient sample, ``eot_iter`` samples per step) follow; APGD-T (every point, every
  target, its highest-loss iterate) is an option.

The members are registered units (``members.py``, ``@register_member``); a new one is one
function there or in a module of its own.

The candidates of an example are its clean image and each member's point. Which one is kept,
and when a point is broken, is decided on selection draws alone; the example's robust score is
the scoring-draw accuracy at the kept candidate (``draws.py``). Every member's own scoring-draw
score on the points it attacked is kept (NaN where earlier members had broken the point).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mi_bench.attacks.draws import pick_lower
from mi_bench.attacks.registry import default_members, get_member, member_names
from mi_bench.attacks.suites import Judge, Outcome, Suite
from mi_bench.errors import UserError


@dataclass
class EnsembleSuite(Suite):
    """``model_for(seed, draws)`` builds the defense with ``draws`` draws per forward (fresh on
    every call); ``calls_cost(draws)`` is its base-model passes per image and call."""

    model_for: Callable[[int, int], nn.Module]
    calls_cost: Callable[[int], int]
    norm: str
    eps: float
    draws: int = 1  # K
    eot_iter: int = 20
    steps: int = 100  # APGD iterations and EOT-PGD steps (``n_iter`` in the record)
    restarts: int = 1
    members: tuple[str, ...] = ()  # () : the registered defaults
    num_classes: int = 10
    name: str = "autoattack"
    warnings: list[str] = field(default_factory=list)
    results: dict[str, np.ndarray] = field(default_factory=dict)  # member -> own score (b,)
    wins: dict[str, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.members = tuple(self.members) or default_members()
        bad = [m for m in self.members if m not in member_names()]
        if bad:  # one line naming every unknown member and the registered ones
            raise UserError(f"{bad} are not ensemble members; expected {member_names()} "
                            "(or --aa-version custom for pyautoattack's list)")

    def settings(self) -> dict:
        return {"version": "ensemble", "attacks": list(self.members), "n_iter": self.steps,
                "eot_iter": self.eot_iter, "restarts": self.restarts,
                "apgd_draws_per_forward": self.draws * self.eot_iter}

    @property
    def target_classes(self) -> int:
        """APGD-T's targets: AutoAttack's 9, fewer when the data set has fewer other classes."""
        return min(9, self.num_classes - 1)

    def passes_per_image(self) -> int:
        """Upper bound: every member runs to the end on every point."""
        return sum(get_member(m).cost(self) for m in self.members)

    def attack(self, x: torch.Tensor, y: torch.Tensor, seed: int, judge: Judge) -> Outcome:
        """Attack with every member in turn; each example keeps the candidate (its clean image
        or a member's point) lowest on selection draws. Member i's points are judged on draws
        of their own (``judge.evaluate(x_adv, idx, i)``)."""
        best_x = x.clone()
        best = judge.clean.copy()  # the clean image is the first candidate
        which = np.zeros(x.shape[0], dtype=np.int16)
        alive = best.select.any(0)  # right in at least one selection draw
        self.results, self.wins = {}, {}
        for i, name in enumerate(self.members):
            own = np.full(x.shape[0], np.nan, dtype=np.float32)
            idx = np.flatnonzero(alive)
            self.wins[name] = 0
            if len(idx):
                x_adv = get_member(name).run(self, x[torch.as_tensor(idx)],
                                             y[torch.as_tensor(idx)], seed + 1009 * i)
                point = judge.evaluate(x_adv, idx, i)
                own[idx] = point.score.mean(0)
                lower = pick_lower(best.take(idx), point, which[idx] == 0)
                self.wins[name] = int(lower.sum())
                upd = idx[lower]
                best.put(upd, point.take(np.flatnonzero(lower)))
                which[upd] = i + 1
                best_x[torch.as_tensor(upd)] = x_adv[torch.as_tensor(np.flatnonzero(lower))]
                alive[idx] = best.select[:, idx].any(0)  # broken: wrong in every selection draw
            self.results[name] = own
        extras = {f"member_{m}": c for m, c in self.results.items()}
        extras.update({f"wins_{m}": np.int64(w) for m, w in self.wins.items()})
        extras["chosen"] = which
        return Outcome(best_x, best, extras)


def ensemble_applies(randomized: bool, version: str | None) -> bool:
    """The ensemble is the default AutoAttack for randomized defenses (``rand`` stays on ask)."""
    return version == "ensemble" or (version is None and randomized)
