"""The MI paper's random-transform baselines: fresh, seeded, batched, differentiable, exact."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from mi_bench.defenses import transforms as T
from mi_bench.errors import UserError


def gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def images(b: int = 4, c: int = 3, h: int = 32, w: int = 32, seed: int = 1) -> torch.Tensor:
    return torch.rand(b, c, h, w, generator=gen(seed))


# name -> (convenience(x, g), draw(x, g), apply(x, params)); defaults are the official settings.
TRANSFORMS = {
    "gaussian": (
        lambda x, g: T.gaussian_noise(x, T.GAUSSIAN_SIGMA, g),
        lambda x, g: T.draw_gaussian_noise(x.shape, T.GAUSSIAN_SIGMA, g),
        T.apply_noise,
    ),
    "uniform": (
        lambda x, g: T.uniform_noise(x, T.UNIFORM_SIGMA, g),
        lambda x, g: T.draw_uniform_noise(x.shape, T.UNIFORM_SIGMA, g),
        T.apply_noise,
    ),
    "rotation": (
        lambda x, g: T.random_rotation(x, T.ROTATION_DEGREES, g),
        lambda x, g: T.draw_rotation_params(x.shape[0], T.ROTATION_DEGREES, g),
        T.apply_rotation,
    ),
    "xie": (
        lambda x, g: T.xie_crop_pad(x, *T.XIE_SIZES, g),
        lambda x, g: T.draw_xie_params(x.shape[0], x.shape[2], x.shape[3], *T.XIE_SIZES, g),
        T.crop_paste_zero_fill,
    ),
    "guo": (
        lambda x, g: T.guo_crop_resize(x, *T.GUO_SIZES, g),
        lambda x, g: T.draw_guo_params(x.shape[0], x.shape[2], x.shape[3], *T.GUO_SIZES, g),
        T.apply_guo,
    ),
}
NAMES = list(TRANSFORMS)
GEOMETRIC = ["rotation", "xie", "guo"]


def row(params, i: int):
    """Image i's parameters, keeping a batch dimension of 1."""
    if isinstance(params, tuple):
        return type(params)(*(t[i:i + 1] for t in params))
    return params[i:i + 1]


# ----------------------------------------------------------------------------- common contract


@pytest.mark.parametrize("name", NAMES)
def test_fresh_draws_per_call(name):
    fn, _, _ = TRANSFORMS[name]
    x, g = images(), gen()
    a, b = fn(x, g), fn(x, g)
    assert not torch.equal(a, b)
    assert not torch.equal(a, x)


@pytest.mark.parametrize("name", NAMES)
def test_same_seed_same_output(name):
    fn, _, _ = TRANSFORMS[name]
    x = images()
    assert torch.equal(fn(x, gen(7)), fn(x, gen(7)))
    assert not torch.equal(fn(x, gen(7)), fn(x, gen(8)))


@pytest.mark.parametrize("name", NAMES)
def test_convenience_is_draw_then_apply(name):
    fn, draw, apply = TRANSFORMS[name]
    x = images()
    assert torch.equal(fn(x, gen(3)), apply(x, draw(x, gen(3))))


@pytest.mark.parametrize("name", NAMES)
def test_batched_equals_per_image_loop(name):
    _, draw, apply = TRANSFORMS[name]
    x = images(b=6)
    params = draw(x, gen(4))
    batched = apply(x, params)
    looped = torch.cat([apply(x[i:i + 1], row(params, i)) for i in range(len(x))])
    torch.testing.assert_close(batched, looped, rtol=0, atol=1e-6)


@pytest.mark.parametrize("name", NAMES)
def test_shape_dtype_and_draws_on_cpu(name):
    fn, draw, _ = TRANSFORMS[name]
    x = images(b=3, c=2, h=32, w=30).double()
    out = fn(x, gen())
    assert out.shape == x.shape and out.dtype == x.dtype
    params = draw(x, gen())
    tensors = params if isinstance(params, tuple) else (params,)
    assert all(t.device.type == "cpu" for t in tensors)


@pytest.mark.parametrize("name", NAMES)
def test_gradient_reaches_x(name):
    fn, _, _ = TRANSFORMS[name]
    x = images(b=2).requires_grad_(True)
    weights = torch.randn(x.shape, generator=gen(9))
    (fn(x, gen()) * weights).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", NAMES)
def test_gradcheck_with_fixed_params(name):
    _, draw, apply = TRANSFORMS[name]
    x = images(b=2, c=1, h=6, w=6).double().requires_grad_(True)
    if name == "xie":
        params = T.draw_xie_params(2, 6, 6, 3, 5, gen())  # official sizes need 32 pixels
    elif name == "guo":
        params = T.draw_guo_params(2, 6, 6, 3, 5, gen())
    else:
        params = draw(x, gen())
    assert torch.autograd.gradcheck(lambda t: apply(t, params), (x,))


@pytest.mark.parametrize("name", GEOMETRIC)
def test_geometric_output_stays_in_unit_range(name):
    fn, _, _ = TRANSFORMS[name]
    x = images(b=8)
    x[:, :, ::3] = 1.0  # saturated rows: interpolation must not overshoot
    out = fn(x, gen())
    assert out.min() >= 0.0 and out.max() <= 1.0


# ----------------------------------------------------------------------------- noise


@pytest.mark.parametrize("name", ["gaussian", "uniform"])
def test_noise_is_unclipped_by_default_and_clipped_on_request(name):
    fn = T.gaussian_noise if name == "gaussian" else T.uniform_noise
    draw = T.draw_gaussian_noise if name == "gaussian" else T.draw_uniform_noise
    x = images(b=16)
    out = fn(x, 0.1, gen(5))
    torch.testing.assert_close(out, x + draw(x.shape, 0.1, gen(5)), rtol=0, atol=0)
    assert out.min() < 0.0 and out.max() > 1.0  # the official code does not clip
    clipped = fn(x, 0.1, gen(5), clip=True)
    assert clipped.min() >= 0.0 and clipped.max() <= 1.0
    torch.testing.assert_close(clipped, out.clamp(0, 1), rtol=0, atol=0)


def test_noise_scales_and_zero_sigma():
    shape = (200, 3, 32, 32)
    g = T.draw_gaussian_noise(shape, 0.025, gen())
    assert abs(g.mean().item()) < 1e-3 and abs(g.std().item() - 0.025) < 5e-4
    u = T.draw_uniform_noise(shape, 0.025, gen())
    assert u.abs().max() <= 0.025 and u.abs().max() > 0.0249
    assert abs(u.std().item() - 0.025 / math.sqrt(3)) < 5e-4
    x = images()
    assert torch.equal(T.gaussian_noise(x, 0.0, gen()), x)
    assert torch.equal(T.uniform_noise(x, 0, gen()), x)


def test_official_defaults_are_halved_to_unit_range():
    assert T.GAUSSIAN_SIGMA == T.UNIFORM_SIGMA == 0.05 / 2
    assert T.ROTATION_DEGREES == 10 and T.XIE_SIZES == T.GUO_SIZES == (20, 28)


# ----------------------------------------------------------------------------- rotation


def test_rotation_angles_within_range():
    angles = T.draw_rotation_params(5000, 10.0, gen())
    assert angles.dtype == torch.float64 and angles.shape == (5000,)
    assert angles.abs().max() <= 10.0
    assert angles.min() < -9.9 and angles.max() > 9.9
    assert torch.equal(T.draw_rotation_params(4, 0.0, gen()), torch.zeros(4, dtype=torch.float64))


def test_rotation_by_zero_is_identity():
    x = images(h=32, w=24)
    torch.testing.assert_close(T.apply_rotation(x, torch.zeros(len(x))), x, rtol=0, atol=1e-6)


def test_rotation_by_90_is_rot90_counter_clockwise():
    x = images(b=2, h=9, w=9)
    out = T.apply_rotation(x, torch.tensor([90.0, -90.0]))
    torch.testing.assert_close(out[0], torch.rot90(x[0], 1, dims=(-2, -1)), rtol=0, atol=1e-5)
    torch.testing.assert_close(out[1], torch.rot90(x[1], -1, dims=(-2, -1)), rtol=0, atol=1e-5)


def test_rotation_by_180_of_non_square_image_flips_both_axes():
    x = images(b=1, h=8, w=13)
    out = T.apply_rotation(x, torch.tensor([180.0]))
    torch.testing.assert_close(out, x.flip(-1, -2), rtol=0, atol=1e-5)


def test_rotation_matches_torchvision_bilinear():
    tvf = pytest.importorskip("torchvision.transforms.functional")
    from torchvision.transforms import InterpolationMode

    x = images(b=3, h=16, w=11)  # non-square: the rotation must be a true one in pixels
    angles = torch.tensor([7.5, -3.0, 33.0])
    out = T.apply_rotation(x, angles)
    for i, a in enumerate(angles.tolist()):
        ref = tvf.rotate(x[i], a, interpolation=InterpolationMode.BILINEAR)
        torch.testing.assert_close(out[i], ref, rtol=0, atol=1e-5)


# ----------------------------------------------------------------------------- crops


@pytest.mark.parametrize("name", ["xie", "guo"])
def test_crop_params_within_bounds(name):
    draw = T.draw_xie_params if name == "xie" else T.draw_guo_params
    p = draw(4000, 32, 30, 20, 28, gen())
    assert all(t.dtype == torch.int64 and t.shape == (4000,) for t in p)
    assert set(p.size.tolist()) == set(range(20, 29))  # every size, nothing else
    for start, extent in [(p.top, 32), (p.left, 30)] + (
            [(p.pad_top, 32), (p.pad_left, 30)] if name == "xie" else []):
        assert start.min() == 0 and (start >= 0).all()
        assert (start + p.size <= extent).all()  # the square lies fully inside the image
        assert (start + p.size == extent).any()  # and the last position is reachable


def test_xie_all_ones_keeps_exactly_s_squared_pixels():
    x = torch.ones(50, 3, 32, 32)
    p = T.draw_xie_params(50, 32, 32, 20, 28, gen())
    out = T.crop_paste_zero_fill(x, p)
    nonzero = (out != 0).sum(dim=(-2, -1))  # (B, C)
    assert torch.equal(nonzero, (p.size ** 2)[:, None].expand(50, 3))
    assert set(out.unique().tolist()) == {0.0, 1.0}


def test_xie_matches_slicing_reference():
    x = images(b=5, h=12, w=10)
    p = T.draw_xie_params(5, 12, 10, 3, 9, gen(2))
    out = T.crop_paste_zero_fill(x, p)
    for i in range(5):
        s, t, le, pt, pl = (int(v[i]) for v in p)
        ref = torch.zeros_like(x[i])
        ref[:, pt:pt + s, pl:pl + s] = x[i, :, t:t + s, le:le + s]
        assert torch.equal(out[i], ref)


def test_xie_gradient_is_one_on_cropped_pixels_only():
    x = images(b=2).requires_grad_(True)
    p = T.draw_xie_params(2, 32, 32, 20, 28, gen())
    T.crop_paste_zero_fill(x, p).sum().backward()
    for i in range(2):
        s, t, le = int(p.size[i]), int(p.top[i]), int(p.left[i])
        expected = torch.zeros_like(x[i])
        expected[:, t:t + s, le:le + s] = 1.0
        assert torch.equal(x.grad[i], expected)


def test_guo_full_size_crop_is_identity():
    x = images(h=32, w=32)
    p = T.GuoParams(torch.full((4,), 32), torch.zeros(4, dtype=torch.long),
                    torch.zeros(4, dtype=torch.long))
    torch.testing.assert_close(T.apply_guo(x, p), x, rtol=0, atol=1e-6)


def test_guo_matches_crop_then_interpolate():
    x = images(b=6, h=32, w=32)
    p = T.draw_guo_params(6, 32, 32, 20, 28, gen(6))
    out = T.apply_guo(x, p)
    for i in range(6):
        s, t, le = (int(v[i]) for v in p)
        crop = x[i:i + 1, :, t:t + s, le:le + s]
        ref = F.interpolate(crop, size=(32, 32), mode="bilinear", align_corners=False)
        torch.testing.assert_close(out[i:i + 1], ref, rtol=0, atol=1e-5)


def test_guo_ignores_pixels_outside_the_crop():
    x = images(b=1).requires_grad_(True)
    p = T.GuoParams(torch.tensor([20]), torch.tensor([5]), torch.tensor([7]))
    T.apply_guo(x, p).sum().backward()
    inside = torch.zeros_like(x, dtype=torch.bool)
    inside[..., 5:25, 7:27] = True
    assert (x.grad[~inside] == 0).all() and (x.grad[inside] > 0).all()


# ----------------------------------------------------------------------------- validation


@pytest.mark.parametrize("sigma", [-0.1, float("nan"), float("inf"), True, "0.1"])
def test_bad_noise_scale(sigma):
    with pytest.raises(UserError, match="noise scale"):
        T.gaussian_noise(images(), sigma, gen())
    with pytest.raises(UserError, match="noise scale"):
        T.draw_uniform_noise((1, 3, 4, 4), sigma, gen())


@pytest.mark.parametrize("degrees", [-1.0, 180.5, float("nan"), float("inf")])
def test_bad_rotation(degrees):
    with pytest.raises(UserError, match=r"\[0, 180\] degrees"):
        T.random_rotation(images(), degrees, gen())


def test_rotation_limits_accepted():
    assert T.check_rotation(0) == 0.0 and T.check_rotation(180) == 180.0


@pytest.mark.parametrize("lo,hi", [(0, 20), (20, 33), (29, 28), (-3, 5), (20.0, 28)])
def test_bad_crop_range(lo, hi):
    for fn in (T.xie_crop_pad, T.guo_crop_resize):
        with pytest.raises(UserError, match="crop"):
            fn(images(), lo, hi, gen())


def test_crop_range_limited_by_shorter_side():
    with pytest.raises(UserError, match="image size \\(30\\)"):
        T.draw_guo_params(2, 32, 30, 20, 31, gen())
    assert T.check_crop_range(1, 32, 32) == (1, 32)


def test_messages_are_one_line():
    for call in (lambda: T.check_noise_scale(-1), lambda: T.check_rotation(200),
                 lambda: T.check_crop_range(5, 2, 32)):
        with pytest.raises(UserError) as err:
            call()
        assert "\n" not in str(err.value)


def test_non_cpu_generator_and_bad_shape_rejected():
    with pytest.raises(ValueError, match="CPU torch.Generator"):
        T.draw_rotation_params(2, 10.0, "not a generator")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="B, C, H, W"):
        T.random_rotation(torch.rand(3, 8, 8), 10.0, gen())


# ----------------------------------------------------------------------------- devices


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", NAMES)
def test_cpu_and_gpu_draws_agree(name):
    fn, _, _ = TRANSFORMS[name]
    x = images()
    torch.testing.assert_close(fn(x.cuda(), gen(11)).cpu(), fn(x, gen(11)), rtol=0, atol=1e-5)
