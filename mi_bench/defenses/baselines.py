"""The MI paper's randomized baselines as registered defenses (official defaults).

The official ``attack_resnet_baselines.py`` averages the softmax over 30 random transforms of
the input, as MI averages over 30 partners; its inputs live in [-1, 1], so its noise scale 0.05
is 0.025 here. Each baseline is a settings dataclass and one call into ``transforms.py``; the
averaging, the draws and the cost are shared by :class:`RandomTransformModel`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import nn

from mi_bench.defenses import transforms as T
from mi_bench.defenses.registry import Defense, check_draws, register, settings_from_options

IMAGE_SIZE = 32  # CIFAR-10/100, the only data sets of this harness


class RandomTransformModel(nn.Module):
    """The model a :class:`TransformDefense` (the registered kind) wraps around its classifier:
    mean softmax of ``model`` over ``draws`` random transforms per image, fresh every call.

    All B x draws transformed images go through chunked batched forwards; the transform is
    differentiable, so EOT attacks see the defense as evaluated. Output: log of the mean.
    """

    randomized = True

    def __init__(self, model: nn.Module, transform, draws: int, generator: torch.Generator,
                 max_batch: int = 64, output: str = "log"):
        super().__init__()
        self.model = model.eval()
        self.transform = transform
        self.draws = draws
        self.generator = generator
        self.max_batch = max_batch
        self.output = output

    def train(self, mode: bool = True) -> RandomTransformModel:
        super().train(mode)
        self.model.eval()
        return self

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b = x.shape[0]
        xs = x[:, None].expand(b, self.draws, *x.shape[1:]).reshape(b * self.draws, *x.shape[1:])
        xs = self.transform(xs, self.generator)
        logits = torch.cat([self.model(c) for c in xs.split(self.max_batch)])
        probs = F.softmax(logits, dim=1).view(b, self.draws, -1).mean(1)
        return probs if self.output == "prob" else probs.clamp_min(1e-12).log()


@dataclass(frozen=True)
class NoiseSettings:
    sigma: float = T.GAUSSIAN_SIGMA  # [0, 1] units: the official 0.05 on [-1, 1] inputs
    draws: int = 30

    def validate(self) -> None:
        T.check_noise_scale(self.sigma)
        check_draws(self.draws)


@dataclass(frozen=True)
class RotationSettings:
    max_degrees: float = T.ROTATION_DEGREES  # torchvision's RandomRotation(10), as the official code
    draws: int = 30

    def validate(self) -> None:
        T.check_rotation(self.max_degrees)
        check_draws(self.draws)


@dataclass(frozen=True)
class CropSettings:
    min_size: int = 20  # side of the random square crop, in pixels, of a 32-pixel image
    max_size: int = 28
    draws: int = 30

    def validate(self) -> None:
        T.check_crop_range(self.min_size, self.max_size, IMAGE_SIZE)
        check_draws(self.draws)


class TransformDefense(Defense):
    """The registered kind of baseline: ``Settings`` (with ``draws``) and ``apply(x, settings,
    generator)``; ``wrap`` puts it in a :class:`RandomTransformModel`."""

    Settings: ClassVar[type]
    family = "transform"

    def __init__(self, name: str, card: dict, options: dict, data_dir: str | None = None):
        super().__init__(name)
        self.config = settings_from_options(self.Settings, options, what=f"defense {name}")

    @staticmethod
    def apply(x: torch.Tensor, s, g: torch.Generator) -> torch.Tensor:
        raise NotImplementedError

    def settings(self) -> dict:
        return asdict(self.config)

    def eval_draws(self) -> int:
        return self.config.draws

    def passes_per_call(self, draws: int | None = None) -> int:
        return draws or self.config.draws

    def wrap(self, model: nn.Module, seed: int, draws: int | None = None,
             max_batch: int = 64) -> nn.Module:
        cfg = self.config
        return RandomTransformModel(model, lambda x, g: self.apply(x, cfg, g),
                                      draws or cfg.draws, torch.Generator().manual_seed(seed),
                                      max_batch=max_batch)

    def binary_inputs(self, x: torch.Tensor, labels: torch.Tensor, task, draws: int,
                      generator: torch.Generator) -> torch.Tensor:
        """``draws`` random transforms of every image, as the defense applies them."""
        b = x.shape[0]
        xs = x[:, None].expand(b, draws, *x.shape[1:]).reshape(b * draws, *x.shape[1:])
        return self.apply(xs, self.config, generator).view(b, draws, *x.shape[1:])

    def label(self) -> str:
        extra = {k: v for k, v in asdict(self.config).items() if k != "draws"}
        return f"{self.name} ({', '.join(f'{k}={v}' for k, v in extra.items())})"


@register("gaussian-noise", aliases=("gaussian",))
class GaussianNoise(TransformDefense):
    """x + N(0, sigma^2), not clipped to [0, 1] (as the official code)."""

    Settings = NoiseSettings

    @staticmethod
    def apply(x, s, g):
        return T.gaussian_noise(x, s.sigma, g)


@register("uniform-noise", aliases=("uniform",))
class UniformNoise(TransformDefense):
    """x + U(-sigma, sigma), not clipped to [0, 1]."""

    Settings = NoiseSettings

    @staticmethod
    def apply(x, s, g):
        return T.uniform_noise(x, s.sigma, g)


@register("rotation")
class Rotation(TransformDefense):
    """A random rotation of up to ``max_degrees`` about the centre, zero fill."""

    Settings = RotationSettings

    @staticmethod
    def apply(x, s, g):
        return T.random_rotation(x, s.max_degrees, g)


@register("xie")
class XieCropPad(TransformDefense):
    """Xie et al. 2018 as in the official MI code: a random square crop, padded back to 32 at
    a random offset with zeros."""

    Settings = CropSettings

    @staticmethod
    def apply(x, s, g):
        return T.xie_crop_pad(x, s.min_size, s.max_size, g)


@register("guo")
class GuoCropResize(TransformDefense):
    """Guo et al. 2018: a random square crop resized back to 32 (bilinear)."""

    Settings = CropSettings

    @staticmethod
    def apply(x, s, g):
        return T.guo_crop_resize(x, s.min_size, s.max_size, g)
