"""The MI paper's randomized input-transform baselines, batched and differentiable.

Pang, Xu & Zhu (ICLR 2020) compare MI with five random transforms applied at inference and
averaged over 30 draws (``attack_resnet_baselines.py`` in P2333/Mixup-Inference). This module
gives each one as a function of images in [0, 1] with shape (B, C, H, W). Every transform is
differentiable with respect to x, so an adaptive attack (EOT) can take gradients through it.

Randomness comes only from an explicit CPU ``torch.Generator``: parameters (and noise) are drawn
on the CPU and then moved to ``x.device``, so a seed gives the same draws on CPU and GPU. Each
transform is split into ``draw_*`` (parameters from the generator) and ``apply_*`` (a
deterministic function of x and those parameters); the convenience function composes both.

Differences from the official code, all deliberate:

- Noise scales are in this project's [0, 1] units, half of the official [-1, 1] values
  (official sigma 0.05 -> 0.025 here).
- The official geometric baselines go through ``ToPILImage``, which quantizes to 8 bits; that
  step has no useful gradient, so it is left out here.
- Rotation uses bilinear instead of torchvision's default nearest interpolation, for gradients.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import NamedTuple

import torch
import torch.nn.functional as F

from mi_bench.errors import UserError

# Official settings (attack_resnet_baselines.py), noise halved to [0, 1] units.
GAUSSIAN_SIGMA = 0.025
UNIFORM_SIGMA = 0.025
ROTATION_DEGREES = 10.0
XIE_SIZES = (20, 28)  # for 32-pixel images
GUO_SIZES = (20, 28)  # for 32-pixel images


class XieParams(NamedTuple):
    """Per-image (B,) int64 tensors: crop side, crop corner, and where the crop is pasted."""

    size: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor
    pad_top: torch.Tensor
    pad_left: torch.Tensor


class GuoParams(NamedTuple):
    """Per-image (B,) int64 tensors: crop side and crop corner."""

    size: torch.Tensor
    top: torch.Tensor
    left: torch.Tensor


# ----------------------------------------------------------------------------- validation


def check_noise_scale(sigma: float) -> float:
    """A noise scale must be a finite number >= 0 (0 gives the identity)."""
    if isinstance(sigma, bool) or not isinstance(sigma, (int, float)) \
            or not math.isfinite(sigma) or sigma < 0:
        raise UserError(f"noise scale must be a finite number >= 0 (in [0, 1] pixel units), "
                        f"got {sigma!r}")
    return float(sigma)


def check_rotation(max_degrees: float) -> float:
    """Angles beyond 180 degrees would only repeat rotations already in the range."""
    if isinstance(max_degrees, bool) or not isinstance(max_degrees, (int, float)) \
            or not 0.0 <= max_degrees <= 180.0:
        raise UserError(f"maximum rotation must lie in [0, 180] degrees, got {max_degrees!r}")
    return float(max_degrees)


def check_crop_range(min_size: int, max_size: int, image_size: int) -> tuple[int, int]:
    """A square crop side range must be integers with 1 <= min_size <= max_size <= image_size."""
    for name, value in (("minimum", min_size), ("maximum", max_size)):
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"crop {name} size must be an integer, got {value!r}")
    if not 1 <= min_size <= max_size <= image_size:
        raise UserError(f"crop sizes must satisfy 1 <= min ({min_size}) <= max ({max_size}) "
                        f"<= image size ({image_size})")
    return min_size, max_size


def _check_images(x: torch.Tensor) -> None:
    if x.dim() != 4:
        raise ValueError(f"expected images of shape (B, C, H, W), got {tuple(x.shape)}")


def _check_generator(generator: torch.Generator) -> None:
    # A CUDA generator would make the draws depend on the device.
    if not isinstance(generator, torch.Generator) or generator.device.type != "cpu":
        raise ValueError("transforms need a CPU torch.Generator (draws are moved to x.device)")


def _uniform_int(n_choices: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Per element an integer uniform in [0, n_choices); float64 so floor never reaches n."""
    u = torch.rand(n_choices.shape, generator=generator, dtype=torch.float64)
    return torch.minimum((u * n_choices).floor().long(), n_choices - 1)


# ----------------------------------------------------------------------------- noise


def draw_gaussian_noise(shape: Sequence[int], sigma: float,
                        generator: torch.Generator) -> torch.Tensor:
    """N(0, sigma^2) noise on the CPU in float32 (cast to x's dtype when applied)."""
    sigma = check_noise_scale(sigma)
    _check_generator(generator)
    return torch.randn(tuple(shape), generator=generator) * sigma


def draw_uniform_noise(shape: Sequence[int], sigma: float,
                       generator: torch.Generator) -> torch.Tensor:
    """U(-sigma, sigma) noise on the CPU in float32."""
    sigma = check_noise_scale(sigma)
    _check_generator(generator)
    return (torch.rand(tuple(shape), generator=generator) * 2.0 - 1.0) * sigma


def apply_noise(x: torch.Tensor, noise: torch.Tensor, clip: bool = False) -> torch.Tensor:
    """x + noise, like the official code, which does not clip (the result may leave [0, 1]).

    ``clip=True`` clamps to [0, 1] with a plain clamp: clipped pixels then get zero gradient.
    """
    _check_images(x)
    if noise.shape != x.shape:
        raise ValueError(f"noise shape {tuple(noise.shape)} != image shape {tuple(x.shape)}")
    out = x + noise.to(device=x.device, dtype=x.dtype)
    return out.clamp(0.0, 1.0) if clip else out


def gaussian_noise(x: torch.Tensor, sigma: float, generator: torch.Generator,
                   clip: bool = False) -> torch.Tensor:
    """Additive Gaussian noise (official baseline: sigma 0.05 in [-1, 1], i.e. 0.025 here).

    Not clipped by default because the official code does not clip either.
    """
    _check_images(x)
    return apply_noise(x, draw_gaussian_noise(x.shape, sigma, generator), clip)


def uniform_noise(x: torch.Tensor, sigma: float, generator: torch.Generator,
                  clip: bool = False) -> torch.Tensor:
    """Additive U(-sigma, sigma) noise; not clipped by default, as in the official code."""
    _check_images(x)
    return apply_noise(x, draw_uniform_noise(x.shape, sigma, generator), clip)


# ----------------------------------------------------------------------------- rotation


def draw_rotation_params(batch: int, max_degrees: float,
                         generator: torch.Generator) -> torch.Tensor:
    """(B,) float64 angles in degrees, uniform in [-max_degrees, max_degrees] (RandomRotation)."""
    max_degrees = check_rotation(max_degrees)
    _check_generator(generator)
    u = torch.rand(batch, generator=generator, dtype=torch.float64)
    return (u * 2.0 - 1.0) * max_degrees


def apply_rotation(x: torch.Tensor, degrees: torch.Tensor) -> torch.Tensor:
    """Rotate each image counter-clockwise by its angle about the image centre, zero fill.

    torchvision's convention (positive = counter-clockwise, centre = geometric centre, no
    expansion). Bilinear interpolation via ``affine_grid``/``grid_sample`` with
    ``align_corners=False`` (pixel centres at half-integers, so a 90 degree turn of a square
    image maps pixel centres onto pixel centres); pixels sampled outside the image read 0.
    """
    _check_images(x)
    b, c, h, w = x.shape
    rad = torch.deg2rad(degrees.to(torch.float64).reshape(b))
    cos, sin = torch.cos(rad), torch.sin(rad)
    zero = torch.zeros_like(cos)
    # Output (u, v) samples input (u cos - v sin H/W, u sin W/H + v cos) in normalized coords;
    # the H/W factors keep it a true rotation in pixels for non-square images.
    theta = torch.stack([torch.stack([cos, -sin * (h / w), zero], -1),
                         torch.stack([sin * (w / h), cos, zero], -1)], -2)
    theta = theta.to(device=x.device, dtype=x.dtype)
    grid = F.affine_grid(theta, [b, c, h, w], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def random_rotation(x: torch.Tensor, max_degrees: float,
                    generator: torch.Generator) -> torch.Tensor:
    """Random rotation in [-max_degrees, max_degrees] per image (official: 10 degrees)."""
    _check_images(x)
    return apply_rotation(x, draw_rotation_params(x.shape[0], max_degrees, generator))


# ----------------------------------------------------------------------------- crops


def _draw_crop(batch: int, height: int, width: int, min_size: int, max_size: int,
               generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    check_crop_range(min_size, max_size, min(height, width))
    _check_generator(generator)
    size = torch.randint(min_size, max_size + 1, (batch,), generator=generator)
    top = _uniform_int(height - size + 1, generator)
    left = _uniform_int(width - size + 1, generator)
    return size, top, left


def draw_xie_params(batch: int, height: int, width: int, min_size: int, max_size: int,
                    generator: torch.Generator) -> XieParams:
    """Crop side uniform in {min_size..max_size}; crop corner and paste offset uniform.

    As in the official code, the crop position and the paste offset are independent draws.
    """
    size, top, left = _draw_crop(batch, height, width, min_size, max_size, generator)
    pad_top = _uniform_int(height - size + 1, generator)
    pad_left = _uniform_int(width - size + 1, generator)
    return XieParams(size, top, left, pad_top, pad_left)


def crop_paste_zero_fill(x: torch.Tensor, params: XieParams) -> torch.Tensor:
    """Paste each image's crop, unscaled, onto a zero canvas of the full size at its offset
    (the general zero-fill shift; Xie et al.'s crop-and-pad is one use of it).

    Batched with index tensors: output pixel (i, j) reads input pixel
    (top + i - pad_top, left + j - pad_left) when it falls inside the pasted square, else 0.
    Exact pixel copies, so the gradient is 1 on the cropped pixels and 0 elsewhere.
    """
    _check_images(x)
    b, c, h, w = x.shape
    size, top, left, pad_top, pad_left = (t.to(x.device).long().reshape(b, 1) for t in params)
    r = torch.arange(h, device=x.device).unsqueeze(0) - pad_top  # (B, H) row inside the crop
    q = torch.arange(w, device=x.device).unsqueeze(0) - pad_left  # (B, W) column inside the crop
    rows = (top + r).clamp(0, h - 1)
    cols = (left + q).clamp(0, w - 1)
    out = x.gather(2, rows[:, None, :, None].expand(b, c, h, w))
    out = out.gather(3, cols[:, None, None, :].expand(b, c, h, w))
    inside = ((r >= 0) & (r < size))[:, :, None] & ((q >= 0) & (q < size))[:, None, :]
    return torch.where(inside[:, None], out, torch.zeros((), dtype=x.dtype, device=x.device))


def xie_crop_pad(x: torch.Tensor, min_size: int, max_size: int,
                 generator: torch.Generator) -> torch.Tensor:
    """Xie et al. (2018) as in the MI code: random square crop, zero-padded back at random."""
    _check_images(x)
    b, _, h, w = x.shape
    return crop_paste_zero_fill(x, draw_xie_params(b, h, w, min_size, max_size, generator))


def draw_guo_params(batch: int, height: int, width: int, min_size: int, max_size: int,
                    generator: torch.Generator) -> GuoParams:
    """Crop side uniform in {min_size..max_size}, crop corner uniform over valid positions."""
    return GuoParams(*_draw_crop(batch, height, width, min_size, max_size, generator))


def apply_guo(x: torch.Tensor, params: GuoParams) -> torch.Tensor:
    """Resize each image's square crop to (H, W) with bilinear interpolation.

    ``align_corners=False`` (half-pixel centres) is the convention of PIL's bilinear resize,
    which the official code uses, and of ``F.interpolate(..., align_corners=False)``: output
    pixel j samples crop coordinate (j + 0.5) * s / W - 0.5. The affine map sends the output
    exactly onto the crop's pixel box, and the sample positions are clamped to the crop's
    outermost pixel centres, so border pixels replicate the crop's edge (as a resize of the
    cropped image does) instead of blending in pixels outside the crop.
    """
    _check_images(x)
    b, c, h, w = x.shape
    size, top, left = (t.to(torch.float64).reshape(b) for t in params)
    zero = torch.zeros_like(size)
    theta = torch.stack([torch.stack([size / w, zero, (2 * left + size) / w - 1], -1),
                         torch.stack([zero, size / h, (2 * top + size) / h - 1], -1)], -2)
    # Normalized coordinates of the crop's first and last pixel centres, per image.
    lo = torch.stack([(2 * left + 1) / w - 1, (2 * top + 1) / h - 1], -1)
    hi = torch.stack([(2 * (left + size) - 1) / w - 1, (2 * (top + size) - 1) / h - 1], -1)
    to = {"device": x.device, "dtype": x.dtype}
    grid = F.affine_grid(theta.to(**to), [b, c, h, w], align_corners=False)
    grid = torch.minimum(grid, hi.to(**to)[:, None, None])
    grid = torch.maximum(grid, lo.to(**to)[:, None, None])
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=False)


def guo_crop_resize(x: torch.Tensor, min_size: int, max_size: int,
                    generator: torch.Generator) -> torch.Tensor:
    """Guo et al. (2018): random square crop resized back to full size (bilinear)."""
    _check_images(x)
    b, _, h, w = x.shape
    return apply_guo(x, draw_guo_params(b, h, w, min_size, max_size, generator))
