"""Attack suites behind one small interface, :class:`Suite`: ``settings()``,
``passes_per_image()`` and ``attack(x, y, seed, judge)``, which returns the adversarial images,
their correctness over fresh evaluation draws and any per-example extras for the record. Simple
suites implement ``perturb()`` and inherit ``attack()``; the ensemble overrides ``attack()``.

- :class:`AutoAttackSuite` runs pyautoattack as published (``standard``, ``rand``, ``plus`` or a
  ``custom`` list), on whatever model it is given: the bare model, or MI with fresh partners on
  every forward (EOT through the defense).
- :class:`PGDSuite` is white-box PGD on the model it is given. It serves three suites:
  ``eot-pgd`` (adaptive: the model is MI with K partners, ``eot_iter`` gradient samples per step),
  ``pgd`` (oblivious: the model is the undefended base model, as in the MI paper) and
  ``transfer`` (the model is a surrogate checkpoint).
"""

from __future__ import annotations

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch
from torch import nn

from mi_bench.attacks.draws import Draws, keep_worst
from mi_bench.attacks.pgd import attack_loss, pgd

AA_VERSIONS = ("standard", "rand", "plus", "custom", "ensemble")
AA_ATTACKS = ("apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t")


class Judge(Protocol):
    """The runner's evaluation of one batch, handed to a suite: the clean image's draws and
    fresh selection and scoring draws at candidate points (``idx``: which examples;
    ``member``: which of a suite's several points, each with its own draws; None: the one)."""

    clean: Draws

    def evaluate(self, x_adv: torch.Tensor, idx: np.ndarray | None = None,
                 member: int | None = None) -> Draws: ...


@dataclass
class Outcome:
    """What a suite gives back for one batch: its points, the draws at each image's chosen
    candidate (the clean image or a point, chosen on selection draws), per-example extras
    (``chosen``: which candidate, 0 the clean image)."""

    x_adv: torch.Tensor
    adv: Draws
    extras: dict[str, np.ndarray] = field(default_factory=dict)


class Suite:
    """The interface every registered suite implements (see the module docstring)."""

    name: str
    warnings: list[str]
    # AutoAttack's own randomness check applies (it warns on a randomized model)
    aa_randomness_check: bool = False

    def settings(self) -> dict:
        """The attack's settings: part of the record's identity."""
        raise NotImplementedError

    def passes_per_image(self) -> int:
        """Upper bound on base-model passes per attacked image (every step run)."""
        raise NotImplementedError

    def perturb(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        raise NotImplementedError

    def attack(self, x: torch.Tensor, y: torch.Tensor, seed: int, judge: Judge) -> Outcome:
        """The point, and per image the worse on selection draws of it and the clean image."""
        x_adv = self.perturb(x, y, seed)
        best, which = keep_worst([judge.clean, judge.evaluate(x_adv)])
        return Outcome(x_adv, best, {"chosen": which})


class PassCounter(nn.Module):
    """Counts images through a model; those forwarded with input gradients also count a backward."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model
        self.forwards = 0
        self.backwards = 0
        self.on_forward = None  # e.g. a progress bar's update, called with the image count

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.forwards += x.shape[0]
        if self.on_forward is not None:
            self.on_forward(x.shape[0])
        if torch.is_grad_enabled() and x.requires_grad:
            self.backwards += x.shape[0]
        return self.model(x)


class DecisionView(nn.Module):
    """What an attack on a stochastic defense sees: gradients through ``grad_model`` (MI with K
    partners, fresh on every call), and every no-grad decision (which points are still robust,
    which restart or iterate is best) through ``decision_model``, the defense as evaluated."""

    def __init__(self, grad_model: nn.Module, decision_model: nn.Module):
        super().__init__()
        self.grad_model = grad_model
        self.decision_model = decision_model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled() and x.requires_grad:
            return self.grad_model(x)
        return self.decision_model(x)


class _Capture(logging.Handler):
    """Keeps AutoAttack's own warnings (randomness, zero gradients, Square) for the record."""

    def __init__(self):
        super().__init__(logging.WARNING)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def aa_warnings() -> Iterator[list[str]]:
    """Collect what AutoAttack's logger warns about while the block runs."""
    handler, logger = _Capture(), logging.getLogger("auto-attack")
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)


@dataclass
class AutoAttackSuite(Suite):
    model: nn.Module
    norm: str
    eps: float
    version: str = "standard"
    attacks: list[str] | None = None
    restarts: int = 1
    eot_iter: int | None = None  # None: AutoAttack's own (20 for 'rand', else 1)
    calls_cost: int = 1  # base passes per model call (1 + K through MI)
    warnings: list[str] = field(default_factory=list)
    name: str = "autoattack"
    own_correct: torch.Tensor | None = None  # AutoAttack's own robust flags for the last batch

    @property
    def aa_randomness_check(self) -> bool:
        return self.version != "rand"  # 'rand' expects a randomized model

    def settings(self) -> dict:
        return {"version": self.version, "attacks": self.attack_list(),
                "restarts": self.effective_restarts(), "eot_iter": self.effective_eot(),
                "n_iter": 100}

    def effective_restarts(self) -> int:
        """APGD/FAB restarts as pyautoattack will run them (only 'custom' takes ours)."""
        return {"custom": self.restarts, "plus": 5}.get(self.version, 1)

    def attack_list(self) -> list[str]:
        if self.version == "custom":
            return list(self.attacks or [])
        return {"standard": ["apgd-ce", "apgd-t", "fab-t", "square"],
                "rand": ["apgd-ce", "apgd-dlr"],
                "plus": ["apgd-ce", "apgd-dlr", "fab", "square", "apgd-t", "fab-t"]}[self.version]

    def effective_eot(self) -> int:
        if self.eot_iter is not None:
            return self.eot_iter
        return 20 if self.version == "rand" else 1

    def passes_per_image(self) -> int:
        """Upper bound on base-model passes per attacked image (every attack runs to the end)."""
        eot, per_attack = self.effective_eot(), {"apgd-ce": 100, "apgd-dlr": 100, "fab": 200,
                                                 "square": 5000, "apgd-t": 900, "fab-t": 1800}
        restarts = self.effective_restarts()
        total = 0
        for a in self.attack_list():
            mult = eot if a.startswith("apgd") else 1
            total += per_attack[a] * mult * (restarts if a in ("apgd-ce", "apgd-dlr", "fab") else 1)
        return total * self.calls_cost

    def build(self, seed: int, device: torch.device | str = "cpu"):
        from pyautoattack import AutoAttack

        kwargs = {"attacks": self.attacks} if self.version == "custom" else {}
        aa = AutoAttack(self.model, norm=self.norm, eps=self.eps, version=self.version,
                        seed=seed, device=str(device), **kwargs)
        if self.version == "custom":  # 'custom' keeps pyautoattack's 5 restarts unless told
            aa.apgd.n_restarts = aa.fab.n_restarts = self.restarts
        if self.eot_iter is not None:
            aa.apgd.eot_iter = aa.apgd_targeted.eot_iter = self.eot_iter
        return aa

    def perturb(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        aa = self.build(seed, x.device)  # APGD draws its starts on the CPU, then moves them
        with aa_warnings() as messages:
            x_adv, y_adv = aa.run_standard_evaluation(x.contiguous(), y, batch_size=x.shape[0])
        self.warnings.extend(m for m in messages if m not in self.warnings)
        self.own_correct = (y_adv.cpu() == y.cpu())
        return x_adv.detach()

    def attack(self, x: torch.Tensor, y: torch.Tensor, seed: int, judge: Judge) -> Outcome:
        out = super().attack(x, y, seed, judge)
        out.extras["own"] = self.own_correct.numpy()  # AutoAttack's own single-draw flags
        return out


@dataclass
class PGDSuite(Suite):
    """PGD with restarts and EOT; on MI, each gradient sample calls MI again (fresh partners)."""

    name: str
    model: nn.Module
    norm: str
    eps: float
    steps: int = 10
    step_size: float | None = None
    loss: str = "ce"
    restarts: int = 1
    eot_iter: int = 1
    targeted: bool = False
    variant: str = "pgd"  # or "apgd": pyautoattack's APGD step-size schedule
    num_classes: int = 10
    calls_cost: int = 1
    warnings: list[str] = field(default_factory=list)

    def settings(self) -> dict:
        return {"steps": self.steps, "step_size": self.step_size, "loss": self.loss,
                "restarts": self.restarts, "eot_iter": self.eot_iter, "targeted": self.targeted,
                "variant": self.variant}

    def passes_per_image(self) -> int:
        select = self.eot_iter if self.restarts > 1 else 0
        return self.restarts * (self.steps * self.eot_iter + select) * self.calls_cost

    def perturb(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        g = torch.Generator().manual_seed(seed)
        target = None
        if self.targeted:  # a random class other than the true one, as the MI paper's targeted PGD
            shift = torch.randint(1, self.num_classes, y.shape, generator=g).to(y.device)
            target = (y + shift) % self.num_classes
        if self.variant == "apgd":
            return self._apgd(x, y, seed)
        best, best_score = x.clone(), torch.full((x.shape[0],), float("inf"), device=x.device)
        for _ in range(self.restarts):
            cand = pgd(self.model, x, y, eps=self.eps, steps=self.steps, norm=self.norm,
                       step_size=self.step_size, random_start=True, loss=self.loss,
                       target=target, eot_iter=self.eot_iter, generator=g)
            if self.restarts == 1:
                return cand
            score = self._true_class_score(cand, y)
            better = score < best_score
            best[better], best_score[better] = cand[better], score[better]
        return best

    @torch.no_grad()
    def _true_class_score(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """EOT estimate of the true-class loss to minimize (negative CE), to pick restarts."""
        total = torch.zeros(x.shape[0], device=x.device)
        for _ in range(self.eot_iter):
            total -= attack_loss(self.model(x), y, "ce")
        return total / self.eot_iter

    def _apgd(self, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
        from pyautoattack.autopgd_base import APGDAttack

        if self.targeted:
            raise ValueError("the apgd variant is untargeted; use --variant pgd for targets")
        apgd = APGDAttack(self.model, n_iter=self.steps, norm=self.norm, n_restarts=self.restarts,
                          eps=self.eps, seed=seed, loss=self.loss, eot_iter=self.eot_iter,
                          rho=0.75, device=str(x.device), logger=logging.getLogger("auto-attack"))
        if self.eot_iter > 1:  # stochastic: keep the highest-loss iterate, not x where unfooled
            torch.manual_seed(seed)  # APGD seeds itself only in its default branch
            return apgd.perturb(x.contiguous(), y, best_loss=True).detach()
        return apgd.perturb(x.contiguous(), y).detach()
