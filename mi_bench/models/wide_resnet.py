"""WideResNet (Zagoruyko & Komodakis 2016), the architecture of most RobustBench CIFAR entries."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mi_bench.models import register
from mi_bench.models.preact_resnet import preact_stages


class WideResNet(nn.Module):
    """Pre-activation WRN: a 16-channel stem, three stages of widths 16k, 32k, 64k."""

    def __init__(self, depth: int, widen: int, num_classes: int):
        super().__init__()
        if (depth - 4) % 6:
            raise ValueError(f"WideResNet depth must be 6n+4, got {depth}")
        n = (depth - 4) // 6
        self.conv1 = nn.Conv2d(3, 16, 3, 1, 1, bias=False)
        self.layers, out_planes = preact_stages(16, [16 * widen, 32 * widen, 64 * widen], n)
        self.bn = nn.BatchNorm2d(out_planes)
        self.fc = nn.Linear(out_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.fc(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register("wrn-28-10")
def wrn_28_10(num_classes: int = 10, depth: int = 28, widen: int = 10) -> nn.Module:
    """WideResNet-28-10 (depth and widen can be changed, e.g. a WRN-16-1 for tests)."""
    return WideResNet(depth, widen, num_classes)
