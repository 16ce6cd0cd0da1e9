"""Evaluate a defense you wrote yourself: a random resize-and-pad (Xie et al., 2018).

    python examples/own_defense.py [N]      # N test images (default 16, the embedded sample)

The same defense from the command line, sharing these records (same settings, same store):
    mi-bench attack --checkpoint mixup --defense examples/own_defense.py:RandomResizePad \
        --defense-opt pad=4 --suite pgd --n-examples 16
"""

import sys

import torch
import torch.nn.functional as F
from torch import nn

import mi_bench


class RandomResizePad:
    randomized = True  # checked before attacking: two forwards must differ

    def __init__(self, pad: int = 4, draws: int = 4):
        self.pad, self.draws = pad, draws

    def settings(self):  # everything that changes a number: part of the records' identity
        return {"pad": self.pad, "draws": self.draws}

    def passes_per_call(self, draws=None):  # base-model forwards per image and call
        return draws or self.draws

    def wrap(self, model, seed, draws=None, max_batch=64):  # randomness only from the seed
        return Resized(model, self.pad, draws or self.draws, torch.Generator().manual_seed(seed))


class Resized(nn.Module):
    """Mean softmax over `draws` random resize-and-pad transforms (one draw per batch)."""

    def __init__(self, model, pad, draws, generator):
        super().__init__()
        self.model, self.pad, self.draws, self.gen = model, pad, draws, generator

    def forward(self, x):
        probs, full = 0, 32 + self.pad
        for _ in range(self.draws):
            size = int(torch.randint(32, full + 1, (1,), generator=self.gen))
            left, top = torch.randint(0, full - size + 1, (2,), generator=self.gen).tolist()
            z = F.interpolate(x, size=size, mode="bilinear", align_corners=False)
            z = F.pad(z, (left, full - size - left, top, full - size - top))
            z = F.interpolate(z, size=32, mode="bilinear", align_corners=False)
            probs = probs + F.softmax(self.model(z), dim=1)
        return (probs / self.draws).log()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    result = mi_bench.benchmark(
        "mixup", n_examples=n, defense=RandomResizePad, defense_opts={"pad": 4},
        suites={"pgd": {}, "eot-pgd": {"steps": 10, "eot_iter": 4}}, attack_draws=1)
    print(result)  # clean, each suite and the worst over attacks, with 95% intervals and cost
    print("record keys:", result.keys)
