"""Time estimates: base-model passes per job, divided by a rate measured here and now.

The rate is a short calibration on the current device: a few batches of base-model forwards
(what an evaluation pays) and forward+backward passes to the input (what an attack pays) of each
checkpoint the sweep uses. MI's mixing and the attacks' own arithmetic are not in it, so the
estimate is a lower bound on time at the measured speed, good to a small factor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import torch

from mi_bench.device import synchronize
from mi_bench.models.zoo import load_classifier


@dataclass(frozen=True)
class Rate:
    forward: float  # images/s, no gradient
    backward: float  # images/s, forward and backward to the input


def _per_second(fn, images: int, device: torch.device, min_seconds: float) -> float:
    fn()  # warm-up (first-call allocations, cuDNN plans)
    synchronize(device)
    done, t0 = 0, time.perf_counter()
    while True:
        fn()
        done += images
        synchronize(device)
        elapsed = time.perf_counter() - t0
        if elapsed >= min_seconds or done >= 50 * images:
            return done / elapsed


def calibrate(checkpoint: str, device: torch.device, batch: int = 64,
              min_seconds: float = 0.3) -> Rate:
    """Measured base-model passes per second of ``checkpoint`` on ``device``."""
    model, _ = load_classifier(checkpoint)
    model = model.to(device).eval().requires_grad_(False)
    x = torch.rand(batch, 3, 32, 32, generator=torch.Generator().manual_seed(0)).to(device)

    def forward():
        with torch.no_grad():
            model(x)

    def backward():
        xg = x.clone().requires_grad_(True)
        torch.autograd.grad(model(xg).logsumexp(1).sum(), xg)

    return Rate(_per_second(forward, batch, device, min_seconds),
                _per_second(backward, batch, device, min_seconds))


def job_seconds(attack_passes: float, eval_passes: float, attack_rate: Rate,
                eval_rate: Rate) -> float:
    """Attack passes at the attacked model's forward+backward rate, evaluation at forward rate."""
    return attack_passes / attack_rate.backward + eval_passes / eval_rate.forward


def hours(seconds: float) -> str:
    if seconds < 10:
        return f"{seconds:.1f} s"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
