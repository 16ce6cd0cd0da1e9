"""AutoAttack-style checks around an attack run: before (randomness, output range, zero
gradients, a huge-eps attack that must succeed), during (every adversarial point inside the
threat model) and after (no stronger attack reading higher than a weaker one on the same images).

They are here, apart from the orchestrator, because each one says whether a number can be
trusted, not how it is made.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable

import torch
from torch import nn

from mi_bench.attacks.pgd import attack_loss
from mi_bench.attacks.suites import PGDSuite, aa_warnings
from mi_bench.errors import UserError
from mi_bench.evaluate import correct_matrix
from mi_bench.results import dotted_get

SANITY_EPS = {"Linf": 0.5, "L2": 20.0}  # far beyond any perturbation a classifier survives
# what strengthens an attack without changing it; records that differ only in these must order
STRENGTH_KEYS = ("eps", "attack.steps", "attack.n_iter", "attack.eot_iter", "attack.restarts",
                 "attack_draws")
# what makes two records the same attack on the same images (apart from its strength)
SAME_ATTACK_KEYS = ("protocol", "checkpoint_sha256", "defense", "defense_settings", "suite",
                    "norm", "seed", "n", "data", "surrogate_sha256", "eval_repeats", "select_repeats",
                    "attack.loss", "attack.version", "attack.attacks", "attack.targeted",
                    "attack.variant")


class InvalidAdversarial(UserError):
    """An attack returned a point outside the threat model: the run fails, nothing is stored."""


def check_valid(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> None:
    """Every adversarial example must lie in [0, 1] and within eps of its clean image."""
    tol = 1e-5 + 1e-5 * eps
    if not torch.isfinite(x_adv).all():
        raise InvalidAdversarial("validity check failed: adversarial examples contain NaN/inf")
    if x_adv.min() < -tol or x_adv.max() > 1 + tol:
        raise InvalidAdversarial(f"validity check failed: values in [{x_adv.min():.4g}, "
                                 f"{x_adv.max():.4g}], outside [0, 1]")
    d = (x_adv - x).flatten(1)
    dist = d.abs().amax(1) if norm == "Linf" else d.norm(dim=1)
    if (dist > eps + tol).any():
        raise InvalidAdversarial(f"validity check failed: {norm} distance up to "
                                 f"{dist.max():.6g} > eps {eps:.6g} ({int((dist > eps + tol).sum())}"
                                 " examples)")


def zero_gradient_fraction(model: nn.Module, x: torch.Tensor, y: torch.Tensor) -> float:
    """Share of examples whose input gradient is exactly zero (AutoAttack's check)."""
    xg = x.clone().requires_grad_(True)
    grad = torch.autograd.grad(attack_loss(model(xg), y, "ce").sum(), xg)[0]
    return float((grad.flatten(1).abs().sum(1) == 0).float().mean())


def model_flags(model: nn.Module, x: torch.Tensor, y: torch.Tensor,
                aa_randomness: bool) -> dict:
    """AutoAttack's checks before attacking: randomness, output range, zero gradients, and
    (``aa_randomness``) pyautoattack's own randomness check, whose warning is kept verbatim."""
    from pyautoattack import checks

    flags = {}
    with torch.no_grad():
        a, b = model(x), model(x)
    flags["randomized"] = not torch.allclose(a, b)
    flags["output_is_probability"] = bool((a >= 0).all() and torch.allclose(a.sum(1),
                                                                             a.new_ones(len(x))))
    flags["zero_grad_fraction"] = zero_gradient_fraction(model, x, y)
    if aa_randomness:
        with aa_warnings() as messages:
            checks.check_randomized(model, x, y, bs=len(x),
                                    logger=logging.getLogger("auto-attack"))
        if messages:
            flags["autoattack_randomness_check"] = messages[0]
    return flags


def large_eps_check(attack_model: nn.Module, eval_model: nn.Module, x: torch.Tensor,
                    y: torch.Tensor, norm: str, eot: int, seed: int) -> dict:
    """At a huge eps any classifier must fall to ~0%; if not, gradients are masked."""
    big = SANITY_EPS[norm]
    suite = PGDSuite("sanity", attack_model, norm, big, 20, big / 8, "ce", 1, min(eot, 5))
    x_adv = suite.perturb(x, y, seed)
    acc = correct_matrix(eval_model, x_adv, y, 1).float().mean().item()
    return {"eps": big, "n": len(x), "acc": acc, "masked": acc > 0.1}


def weaker_attack_stronger(record: dict, others: Iterable[dict]) -> list[str]:
    """Records of the same attack on the same images that differ only in strength (eps, steps,
    EOT, restarts, K) must not read higher when stronger, beyond two binomial standard errors."""
    msgs = []
    for other in others:
        if other.get("key") == record["key"] or any(
                dotted_get(record, k) != dotted_get(other, k) for k in SAME_ATTACK_KEYS):
            continue
        diffs = {k: (dotted_get(record, k), dotted_get(other, k)) for k in STRENGTH_KEYS
                 if dotted_get(record, k) != dotted_get(other, k)}
        if not diffs or any(a is None or b is None for a, b in diffs.values()):
            continue
        ge = all(a >= b for a, b in diffs.values())
        le = all(a <= b for a, b in diffs.values())
        n = record["n"]
        tol = 2 * math.sqrt(max(record["robust_acc"] * (1 - record["robust_acc"]), 1 / n) / n)
        if ge and record["robust_acc"] > other["robust_acc"] + tol:
            msgs.append(f"stronger attack {diffs} gave higher accuracy "
                        f"{record['robust_acc']:.3f} > {other['robust_acc']:.3f} ({other['key']})")
        if le and other["robust_acc"] > record["robust_acc"] + tol:
            msgs.append(f"stronger attack {diffs} in {other['key']} gave higher accuracy "
                        f"{other['robust_acc']:.3f} > {record['robust_acc']:.3f}")
    return msgs
