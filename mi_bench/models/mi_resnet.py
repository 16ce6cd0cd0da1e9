"""The CIFAR "ResNet-50" of the official Mixup-Inference code (Pang, Xu & Zhu, ICLR 2020).

Three stages of five bottleneck blocks (expansion 1, widths 64/128/256, stride on the 3x3 conv),
a 5x5 stride-1 stem without max-pooling, global average pooling and one linear layer. Parameter
and buffer names follow the authors' torchvision-derived layout (``conv1``, ``bn1``,
``layer1..3.<i>.{conv1..3,bn1..3,downsample.0/1}``, ``fc_dense``) so that their plain state dicts
load with ``strict=True``. A head saved as ``fc.*`` is accepted as an alias of ``fc_dense.*``.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from mi_bench.models import register

STEM_WIDTH = 64
STAGE_WIDTHS = (64, 128, 256)
STAGE_STRIDES = (1, 2, 2)
BLOCKS_PER_STAGE = 5
HEAD = "fc_dense"
HEAD_ALIASES = ("fc",)


class Bottleneck(nn.Module):
    """1x1 -> 3x3 (strided) -> 1x1 residual block with expansion 1 (post-activation)."""

    def __init__(self, in_planes: int, planes: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(in_planes, planes, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(planes)
        self.conv2 = nn.Conv2d(planes, planes, 3, stride, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(planes)
        self.conv3 = nn.Conv2d(planes, planes, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(planes)
        self.downsample: nn.Module | None = None
        if stride != 1 or in_planes != planes:
            self.downsample = nn.Sequential(
                nn.Conv2d(in_planes, planes, 1, stride, bias=False), nn.BatchNorm2d(planes)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = F.relu(self.bn1(self.conv1(x)))
        out = F.relu(self.bn2(self.conv2(out)))
        out = self.bn3(self.conv3(out))
        skip = x if self.downsample is None else self.downsample(x)
        return F.relu(out + skip)


class MIResNet(nn.Module):
    """Stem conv5x5 -> layer1..layer3 of bottlenecks -> global average pool -> ``fc_dense``."""

    def __init__(self, num_classes: int = 10, blocks: int = BLOCKS_PER_STAGE):
        super().__init__()
        self.conv1 = nn.Conv2d(3, STEM_WIDTH, 5, 1, 2, bias=False)
        self.bn1 = nn.BatchNorm2d(STEM_WIDTH)
        in_planes = STEM_WIDTH
        for i, (planes, stride) in enumerate(zip(STAGE_WIDTHS, STAGE_STRIDES), start=1):
            stage = [Bottleneck(in_planes, planes, stride)]
            stage += [Bottleneck(planes, planes) for _ in range(blocks - 1)]
            setattr(self, f"layer{i}", nn.Sequential(*stage))
            in_planes = planes
        setattr(self, HEAD, nn.Linear(in_planes, num_classes))
        self._init_weights()
        self.register_load_state_dict_pre_hook(_accept_head_alias)

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv2d):
                nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
            elif isinstance(m, nn.BatchNorm2d):
                nn.init.ones_(m.weight)
                nn.init.zeros_(m.bias)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Pooled 256-d penultimate features."""
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.layer3(self.layer2(self.layer1(out)))
        return F.adaptive_avg_pool2d(out, 1).flatten(1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return getattr(self, HEAD)(self.features(x))


def _accept_head_alias(module: nn.Module, state_dict: dict[str, Any], prefix: str,
                       *_: Any) -> None:
    """Rename ``fc.*`` to ``fc_dense.*`` in a dict being loaded (the caller's dict is a copy)."""
    for alias in HEAD_ALIASES:
        for name in ("weight", "bias"):
            old, new = f"{prefix}{alias}.{name}", f"{prefix}{HEAD}.{name}"
            if old in state_dict and new not in state_dict:
                state_dict[new] = state_dict.pop(old)


@register("mi-resnet", mean=(0.5, 0.5, 0.5), std=(0.5, 0.5, 0.5))
def mi_resnet(num_classes: int = 10) -> nn.Module:
    """Official Mixup-Inference CIFAR ResNet-50 (3x5 bottlenecks, expansion 1); inputs in [-1, 1]."""
    return MIResNet(num_classes)
