"""Accuracy of deterministic models and stochastic defenses, computed the same way everywhere.

A stochastic defense is evaluated over R independent draws: the mean accuracy averages all
draws, and the worst case counts a point only if it is right in every draw.
"""

from __future__ import annotations

from dataclasses import replace

import torch
from torch import nn
from tqdm import tqdm

from mi_bench.data import Split, load_split
from mi_bench.defense import MIConfig, MixupInference, PartnerPool
from mi_bench.device import module_device
from mi_bench.errors import UserError

DEFENSES = ("none", "mi-pl", "mi-ol", "mi-combined")


def mi_config_for(defense: str, card: dict, **overrides) -> MIConfig | None:
    """MIConfig for ``defense``; lambda defaults to 0.6 on IAT models, as the official code."""
    if defense not in DEFENSES:
        raise UserError(f"unknown defense {defense!r}; expected one of {DEFENSES}")
    if defense == "none":
        return None
    given = {k: v for k, v in overrides.items() if v is not None}
    if defense == "mi-combined" and ({"n_samples", "lam"} & set(given)):
        raise UserError("mi-combined uses its own partners (5 PL at 0.5, 15 OL at 0.4); "
                        "--mi-n and --mi-lambda apply to mi-pl and mi-ol")
    cfg = MIConfig(mode=defense.removeprefix("mi-"))
    if "lam" not in given and card.get("method") == "iat" and defense != "mi-combined":
        given["lam"] = 0.6
    cfg = replace(cfg, **given)
    cfg.validate()
    return cfg


def build_defense(model: nn.Module, card: dict, mi: MIConfig | None, seed: int,
                  data_dir=None, pool: PartnerPool | None = None,
                  max_batch: int = 64) -> nn.Module:
    """The model as attacked and evaluated: itself, or MI around it with its own generator."""
    if mi is None:
        return model
    if pool is None:
        split = load_split(card.get("dataset", "cifar10"), mi.pool_split, data_dir)
        pool = PartnerPool(split)
    if pool.num_classes != card.get("num_classes", pool.num_classes):
        raise UserError(f"partner pool has {pool.num_classes} classes, model has "
                        f"{card['num_classes']}")
    gen = torch.Generator().manual_seed(seed)
    return MixupInference(model, pool, mi, generator=gen, max_batch=max_batch, output="log")


def is_stochastic(model: nn.Module) -> bool:
    return isinstance(model, MixupInference)


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
