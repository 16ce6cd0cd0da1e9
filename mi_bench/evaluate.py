"""Accuracy of deterministic models and stochastic defenses, computed the same way everywhere.

A stochastic defense is evaluated over R independent draws: the mean accuracy averages all
draws, and the worst case counts a point only if it is right in every draw.
"""

from __future__ import annotations

import torch
from torch import nn
from tqdm import tqdm

from mi_bench.data import Split
from mi_bench.device import module_device


def is_stochastic(model: nn.Module) -> bool:
    """Randomized defenses (MI, the baselines) mark themselves; anything else is deterministic."""
    return bool(getattr(model, "randomized", False))


@torch.no_grad()
def correct_matrix(model: nn.Module, x: torch.Tensor, y: torch.Tensor, repeats: int = 1,
                   batch_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Bool (R, n): whether draw r classifies example i correctly (R = 1 if deterministic)."""
    r = repeats if is_stochastic(model) else 1
    device = module_device(model)  # inputs may live on the CPU; the model decides
    out = torch.zeros(r, x.shape[0], dtype=torch.bool)
    steps = [(k, i) for k in range(r) for i in range(0, x.shape[0], batch_size)]
    for k, i in tqdm(steps, desc="evaluating", disable=not progress, leave=False):
        xb = x[i:i + batch_size].to(device)
        out[k, i:i + xb.shape[0]] = model(xb).argmax(1).cpu() == y[i:i + batch_size].cpu()
    return out


def summarize(correct: torch.Tensor) -> dict:
    """Mean accuracy over draws and examples, and worst case (right in every draw)."""
    return {"acc": correct.float().mean().item(), "worst_acc": correct.all(0).float().mean().item(),
            "draws": int(correct.shape[0]), "n": int(correct.shape[1])}


def clean_accuracy(model: nn.Module, split: Split, repeats: int = 5, batch_size: int = 256,
                   progress: bool = False) -> dict:
    return summarize(correct_matrix(model, split.float_images(), split.labels, repeats,
                                    batch_size, progress))
