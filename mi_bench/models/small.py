"""A small CNN that trains to useful accuracy on a laptop CPU within minutes (tests, smoke runs)."""

from __future__ import annotations

from torch import nn

from mi_bench.models import register


def _conv_bn(c_in: int, c_out: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, 3, 1, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


@register("small-cnn")
def small_cnn(num_classes: int = 10, width: int = 32) -> nn.Module:
    """Three conv-BN-ReLU stages with max pooling: about 0.3M parameters at width 32."""
    w = width
    return nn.Sequential(
        *_conv_bn(3, w), nn.MaxPool2d(2),
        *_conv_bn(w, 2 * w), nn.MaxPool2d(2),
        *_conv_bn(2 * w, 4 * w), *_conv_bn(4 * w, 4 * w), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4 * w, num_classes),
    )
