"""Projected gradient descent with EOT: the one white-box loop that training and attacks share.

Used by IAT's inner maximization (k steps, random start), the oblivious and transfer suites
(on a deterministic surrogate) and the adaptive EOT-PGD suite (through a stochastic defense,
where every gradient sample calls the model again and so sees fresh MI partners).
"""

from __future__ import annotations

from collections import Counter

import torch
import torch.nn.functional as F

NORMS = ("Linf", "L2")
LOSSES = ("ce", "dlr", "margin")


def dlr_loss(logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Difference of logits ratio (Croce & Hein 2020), per example; larger means closer to error."""
    srt, _ = logits.sort(dim=1)
    z_y = logits.gather(1, y[:, None]).squeeze(1)
    top_is_y = srt[:, -1] == z_y
    z_other = torch.where(top_is_y, srt[:, -2], srt[:, -1])
    return -(z_y - z_other) / (srt[:, -1] - srt[:, -3] + 1e-12)


def attack_loss(out: torch.Tensor, y: torch.Tensor, loss: str) -> torch.Tensor:
    """Per-example loss to ascend (untargeted)."""
    if loss == "ce":
        return F.cross_entropy(out, y, reduction="none")
    if loss == "dlr":
        return dlr_loss(out, y)
    if loss == "margin":
        return margin_loss(out, y)
    raise ValueError(f"unknown loss {loss!r}; expected one of {LOSSES}")


def margin_loss(out: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Carlini-Wagner margin: best other output minus the true one (> 0 means wrong). On a
    randomized defense it is taken on the log of the mean output, where CE can saturate."""
    z_y = out.gather(1, y[:, None]).squeeze(1)
    other = out.masked_fill(F.one_hot(y, out.shape[1]).bool(), float("-inf")).amax(1)
    return other - z_y


def project(x_adv: torch.Tensor, x: torch.Tensor, eps: float, norm: str) -> torch.Tensor:
    """Back into the eps ball around x (in ``norm``) and into [0, 1]."""
    delta = x_adv - x
    if norm == "Linf":
        delta = delta.clamp(-eps, eps)
    elif norm == "L2":
        n = delta.flatten(1).norm(dim=1).clamp_min(1e-12)
        delta = delta * (eps / n).clamp(max=1.0).view(-1, 1, 1, 1)
    else:
        raise ValueError(f"unknown norm {norm!r}; expected one of {NORMS}")
    return (x + delta).clamp(0.0, 1.0)


def _random_start(x: torch.Tensor, eps: float, norm: str, generator) -> torch.Tensor:
    """Drawn on the CPU (``generator`` is a CPU generator) and then moved, so that a seed gives
    the same start on every device."""
    if norm == "Linf":
        noise = torch.rand(x.shape, generator=generator) * 2 - 1
        return x + eps * noise.to(x.device)
    d = torch.randn(x.shape, generator=generator)
    d = (d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)).to(x.device)
    r = torch.rand(x.shape[0], generator=generator).view(-1, 1, 1, 1).to(x.device)
    return x + eps * r * d


def _step(grad: torch.Tensor, step_size: float, norm: str) -> torch.Tensor:
    if norm == "Linf":
        return step_size * grad.sign()
    n = grad.flatten(1).norm(dim=1).clamp_min(1e-12).view(-1, 1, 1, 1)
    return step_size * grad / n


def pgd(model, x: torch.Tensor, y: torch.Tensor, *, eps: float, steps: int, norm: str = "Linf",
        step_size: float | None = None, random_start: bool = True, loss: str = "ce",
        target: torch.Tensor | None = None, eot_iter: int = 1, generator=None,
        counter: Counter | None = None) -> torch.Tensor:
    """PGD; with ``target`` it descends the loss of the target class instead (targeted).

    ``eot_iter`` gradient samples are averaged per step (expectation over transformation).
    ``counter['grad_calls']`` counts model forward+backward calls per example.
    """
    if step_size is None:
        step_size = 2.5 * eps / max(steps, 1)
    x = x.detach()
    x_adv = project(_random_start(x, eps, norm, generator), x, eps, norm) if random_start else x
    sign, label = (-1.0, target) if target is not None else (1.0, y)
    for _ in range(steps):
        grad = torch.zeros_like(x)
        for _ in range(eot_iter):
            x_in = x_adv.clone().requires_grad_(True)
            value = attack_loss(model(x_in), label, loss).sum()
            grad += torch.autograd.grad(value, x_in)[0]
            if counter is not None:
                counter["grad_calls"] += x.shape[0]
        x_adv = project(x_adv + sign * _step(grad, step_size, norm), x, eps, norm).detach()
    return x_adv
