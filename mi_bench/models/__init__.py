"""Model zoo addressed by name, timm-style: a new architecture is one registered function.

Every model returned by :func:`create_model` takes float images in [0, 1] and normalizes them
itself, so attacks and eps are always in pixel units.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import partial

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

    @property
    def head(self) -> nn.Linear:
        """The last linear layer: what the binarization test replaces with its readout."""
        return last_linear(self.net)

    def features(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features (the head's input) of images in [0, 1]."""
        z = (x - self.mean) / self.std
        own = getattr(self.net, "features", None)
        return own(z) if callable(own) else head_input(self.net, z)


def last_linear(model: nn.Module) -> nn.Linear:
    """The last ``nn.Linear`` registered in ``model``: the classifier head of every zoo and
    RobustBench CIFAR model (checked against the full forward by :func:`feature_split`)."""
    linears = [m for m in model.modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise UserError(f"{type(model).__name__} has no linear layer to split features from")
    return linears[-1]


def head_input(model: nn.Module, x: torch.Tensor) -> torch.Tensor:
    """The input of ``model``'s last linear layer on ``x`` (one full forward, differentiable)."""
    seen: list[torch.Tensor] = []
    handle = last_linear(model).register_forward_pre_hook(lambda _m, a: seen.append(a[0]))
    try:
        model(x)
    finally:
        handle.remove()
    if len(seen) != 1:
        raise UserError(f"{type(model).__name__}: its last linear layer ran {len(seen)} times "
                        "in one forward; no features/head split")
    return seen[0].flatten(1)


def feature_split(model: nn.Module, probe: torch.Tensor | None = None
                  ) -> tuple[Callable[[torch.Tensor], torch.Tensor], nn.Linear]:
    """(features, head) of any classifier, so that ``head(features(x)) == model(x)``.

    Models with their own ``features``/``head`` (``Normalized``) use them; any other module
    (a RobustBench model) is split at the input of its last linear layer. With ``probe`` the
    split is checked against the full forward, so a head that is not applied last fails here.
    """
    if isinstance(model, Normalized):
        features, head = model.features, model.head
    else:
        head = last_linear(model)
        features = partial(head_input, model)
    if probe is not None:
        with torch.no_grad():
            full, split = model(probe), head(features(probe))
        if full.shape != split.shape or not torch.allclose(full, split, rtol=1e-4, atol=1e-4):
            raise UserError(f"{type(model).__name__}: head(features(x)) differs from the model's "
                            "output; its last linear layer is not its classifier head")
    return features, head


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
