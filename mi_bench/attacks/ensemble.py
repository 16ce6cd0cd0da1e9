"""AutoAttack for randomized defenses: every point attacked by every member, on many draws.

pyautoattack's published ``rand`` version fits a deterministic model better than a randomized
one: it never attacks a point that one clean draw misclassified, it returns the clean image for
every point it did not break, and APGD keeps the iterate (and halves its step) on the logits of
the last EOT sample, one draw of the defense. An R-draw evaluation then credits points that were
never attacked. This ensemble removes all three:

- every point right on its clean image in at least one evaluation draw is attacked by every
  member, to the end of its budget, until it is wrong in every one of R fresh evaluation draws
  (checked after each member); nothing is skipped on the word of one draw;
- APGD-CE and APGD-DLR (pyautoattack's own ``APGDAttack``, in its keep-the-highest-loss mode)
  attack the defense with K x EOT draws inside one forward, as Tramer et al. (2020) attacked MI,
  so the loss APGD tracks for its iterate, step size and restarts is a many-draw estimate;
- EOT-PGD with CE and with a margin loss on the log of the defense's mean output (fresh K draws
  per gradient sample, ``eot_iter`` samples per step) follow; APGD-T is an option.

Each example's robust score is the minimum over members of its mean correctness over the R
draws; every member's per-example result is kept.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mi_bench.attacks.suites import PGDSuite

MEMBERS = ("apgd-ce", "apgd-dlr", "apgd-t", "eot-pgd-ce", "eot-pgd-margin")
DEFAULT_MEMBERS = ("apgd-ce", "apgd-dlr", "eot-pgd-ce", "eot-pgd-margin")


@dataclass
class EnsembleSuite:
    """``model_for(seed, draws)`` builds the defense with ``draws`` draws per forward (fresh on
    every call); ``calls_cost(draws)`` is its base-model passes per image and call."""

    model_for: Callable[[int, int], nn.Module]
    calls_cost: Callable[[int], int]
    norm: str
    eps: float
    draws: int = 1  # K
    eot_iter: int = 20
    n_iter: int = 100  # APGD iterations and EOT-PGD steps
    restarts: int = 1
    members: tuple[str, ...] = DEFAULT_MEMBERS
    num_classes: int = 10
    name: str = "autoattack"
    warnings: list[str] = field(default_factory=list)
    results: dict[str, np.ndarray] = field(default_factory=dict)  # member -> (R, b) correct
    wins: dict[str, int] = field(default_factory=dict)

    def settings(self) -> dict:
        return {"version": "ensemble", "attacks": list(self.members), "n_iter": self.n_iter,
                "eot_iter": self.eot_iter, "restarts": self.restarts,
                "apgd_draws_per_forward": self.draws * self.eot_iter}

    @property
    def target_classes(self) -> int:
        """APGD-T's targets: AutoAttack's 9, fewer when the data set has fewer other classes."""
        return min(9, self.num_classes - 1)

    def passes_per_image(self) -> int:
        """Upper bound: every member runs to the end on every point."""
        total = 0
        for m in self.members:
            if m.startswith("apgd"):
                targets = self.target_classes if m == "apgd-t" else 1
                total += self.n_iter * self.restarts * targets * self.calls_cost(
                    self.draws * self.eot_iter)
            else:
                total += self.n_iter * self.restarts * self.eot_iter * self.calls_cost(self.draws)
        return total

    def _member(self, name: str, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        if name.startswith("apgd"):
            from pyautoattack.autopgd_base import APGDAttack, APGDAttack_targeted

            model = self.model_for(seed, self.draws * self.eot_iter)
            log = logging.getLogger("auto-attack")
            if name == "apgd-t":
                atk = APGDAttack_targeted(model, n_iter=self.n_iter, norm=self.norm,
                                          n_restarts=self.restarts, eps=self.eps, seed=seed,
                                          eot_iter=1, rho=0.75, device=str(x.device),
                                          logger=log, n_target_classes=self.target_classes)
                return atk.perturb(x.contiguous(), y).detach()
            atk = APGDAttack(model, n_iter=self.n_iter, norm=self.norm, n_restarts=self.restarts,
                             eps=self.eps, seed=seed, loss=name.removeprefix("apgd-"),
                             eot_iter=1, rho=0.75, device=str(x.device), logger=log)
            torch.manual_seed(seed)  # APGD seeds itself only in its default branch
            # best_loss: attack every point and keep its highest-loss iterate, never skip it
            return atk.perturb(x.contiguous(), y, best_loss=True).detach()
        loss = name.removeprefix("eot-pgd-")
        suite = PGDSuite("eot-pgd", self.model_for(seed, self.draws), self.norm, self.eps,
                         self.n_iter, 2.5 * self.eps / self.n_iter, loss, self.restarts,
                         self.eot_iter, num_classes=self.num_classes)
        return suite.perturb(x, y, seed)

    def perturb(self, x: torch.Tensor, y: torch.Tensor, seed: int, clean: np.ndarray,
                evaluate: Callable[[torch.Tensor, np.ndarray, int], np.ndarray]
                ) -> tuple[torch.Tensor, np.ndarray]:
        """Attack with every member in turn; returns each example's worst adversarial image and
        its (R, b) correctness. ``clean`` is the (R, b) clean correctness; ``evaluate(x_adv,
        idx, i)`` checks member i's images of examples ``idx`` and gives their fresh R-draw
        correctness."""
        best_x = x.clone()
        best = clean.copy()  # points never right stay as they are (not robust anyway)
        alive = clean.any(0)  # right in at least one draw
        self.results, self.wins = {}, {}
        for i, name in enumerate(self.members):
            mine = best.copy()
            idx = np.flatnonzero(alive)
            if len(idx):
                sel = torch.as_tensor(idx)
                x_adv = self._member(name, x[sel], y[sel], seed + 1009 * i)
                correct = evaluate(x_adv, idx, i)
                mine[:, idx] = correct
                better = correct.mean(0) < best[:, idx].mean(0)
                self.wins[name] = int(better.sum())
                upd = idx[better]
                best[:, upd] = correct[:, better]
                best_x[torch.as_tensor(upd)] = x_adv[torch.as_tensor(np.flatnonzero(better))]
                alive[idx] = best[:, idx].any(0)  # broken: wrong in every fresh draw
            else:
                self.wins[name] = 0
            self.results[name] = mine
        return best_x, best


def ensemble_applies(randomized: bool, version: str | None) -> bool:
    """The ensemble is the default AutoAttack for randomized defenses (``rand`` stays on ask)."""
    return version == "ensemble" or (version is None and randomized)


def member_list(attacks: list[str] | None) -> tuple[str, ...]:
    return tuple(attacks) if attacks else DEFAULT_MEMBERS


def bad_members(attacks: list[str] | None) -> list[str]:
    return [a for a in attacks or [] if a not in MEMBERS]
