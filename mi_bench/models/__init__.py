"""Model zoo addressed by name, timm-style: a new architecture is one registered function.

Every model returned by :func:`create_model` takes float images in [0, 1] and normalizes them
itself, so attacks and eps are always in pixel units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from mi_bench.errors import UserError

CIFAR_MEAN = (0.4914, 0.4822, 0.4465)
CIFAR_STD = (0.2471, 0.2435, 0.2616)
NO_NORM = ((0.0, 0.0, 0.0), (1.0, 1.0, 1.0))


@dataclass(frozen=True)
class ModelSpec:
    name: str
    build: Callable[..., nn.Module]
    mean: tuple[float, float, float]
    std: tuple[float, float, float]
    doc: str


_REGISTRY: dict[str, ModelSpec] = {}


def register(name: str, mean=CIFAR_MEAN, std=CIFAR_STD):
    """Decorator: ``@register("my-net")`` on ``def my_net(num_classes, **kw) -> nn.Module``."""

    def wrap(fn: Callable[..., nn.Module]) -> Callable[..., nn.Module]:
        _REGISTRY[name] = ModelSpec(name, fn, tuple(mean), tuple(std), (fn.__doc__ or "").strip())
        return fn

    return wrap


class Normalized(nn.Module):
    """Wraps a network that expects normalized input; ``net``'s state dict is what gets saved."""

    def __init__(self, net: nn.Module, mean, std):
        super().__init__()
        self.net = net
        self.register_buffer("mean", torch.tensor(mean).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(std).view(1, 3, 1, 1), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net((x - self.mean) / self.std)


def list_models() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get_spec(name: str) -> ModelSpec:
    _load_builtin()
    if name not in _REGISTRY:
        raise UserError(f"unknown architecture {name!r}; known: {', '.join(sorted(_REGISTRY))}"
                        " (or robustbench:<name>, autoattack-resnet18)")
    return _REGISTRY[name]


def create_model(name: str, num_classes: int = 10, mean=None, std=None, **kwargs) -> Normalized:
    """Build architecture ``name`` wrapped with its input normalization."""
    spec = get_spec(name)
    try:
        net = spec.build(num_classes=num_classes, **kwargs)
    except TypeError as exc:
        raise UserError(f"architecture {name!r} does not take these options {kwargs}: {exc}") from None
    return Normalized(net, mean or spec.mean, std or spec.std)


def _load_builtin() -> None:
    """Import the modules that register the built-in architectures (once)."""
    from mi_bench.models import mi_resnet, preact_resnet, resnet, small, wide_resnet  # noqa: F401
