"""PreAct ResNet-18 (He et al. 2016), the usual CIFAR baseline; ``width`` scales every stage."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from mi_bench.models import register


class PreActBlock(nn.Module):
    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.bn1 = nn.BatchNorm2d(in_planes)
        self.conv1 = nn.Conv2d(in_planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, 1, 1, bias=False)
        self.shortcut = None
        if stride != 1 or in_planes != planes:
            self.shortcut = nn.Conv2d(in_planes, planes, 1, stride, bias=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(x))
        skip = self.shortcut(out) if self.shortcut is not None else x
        out = self.conv1(out)
        out = self.conv2(F.relu(self.bn2(out)))
        return out + skip


def preact_stages(in_planes: int, widths: list[int], blocks: int | list[int]
                  ) -> tuple[nn.Sequential, int]:
    """Stages of pre-activation blocks; every stage after the first halves the resolution."""
    counts = [blocks] * len(widths) if isinstance(blocks, int) else list(blocks)
    layers = []
    for i, (planes, n) in enumerate(zip(widths, counts, strict=True)):
        for j in range(n):
            layers.append(PreActBlock(in_planes, planes, 2 if (i > 0 and j == 0) else 1))
            in_planes = planes
    return nn.Sequential(*layers), in_planes


class PreActResNet(nn.Module):
    def __init__(self, blocks: tuple[int, ...], num_classes: int, width: int):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, 3, 1, 1, bias=False)
        self.layers, in_planes = preact_stages(width, [width * 2**i for i in range(len(blocks))],
                                               list(blocks))
        self.bn = nn.BatchNorm2d(in_planes)
        self.linear = nn.Linear(in_planes, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn(self.layers(self.conv1(x))))
        return self.linear(F.adaptive_avg_pool2d(out, 1).flatten(1))


@register("preact-resnet18")
def preact_resnet18(num_classes: int = 10, width: int = 64) -> nn.Module:
    """PreAct ResNet-18; width 64 is the standard one, width 16 trains on a CPU in minutes."""
    return PreActResNet((2, 2, 2, 2), num_classes, width)
