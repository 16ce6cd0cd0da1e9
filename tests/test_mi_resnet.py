"""The Mixup-Inference CIFAR ResNet: output shape, the official state-dict layout, strict loading."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import torch

from mi_bench.models.mi_resnet import mi_resnet

# Key -> shape in the official checkpoints (torchvision-style names, 10 classes). Stem is 5x5/64,
# bottlenecks have expansion 1, only the first block of layer2/layer3 has a downsample branch.
OFFICIAL_SHAPES: dict[str, tuple[int, ...]] = {
    "conv1.weight": (64, 3, 5, 5),
    "bn1.weight": (64,),
    "bn1.bias": (64,),
    "bn1.running_mean": (64,),
    "bn1.running_var": (64,),
    "bn1.num_batches_tracked": (),
    "layer1.0.conv1.weight": (64, 64, 1, 1),
    "layer1.0.bn1.weight": (64,),
    "layer1.0.conv2.weight": (64, 64, 3, 3),
    "layer1.0.bn2.running_var": (64,),
    "layer1.0.conv3.weight": (64, 64, 1, 1),
    "layer1.0.bn3.bias": (64,),
    "layer1.4.conv3.weight": (64, 64, 1, 1),
    "layer2.0.conv1.weight": (128, 64, 1, 1),
    "layer2.0.conv2.weight": (128, 128, 3, 3),
    "layer2.0.conv3.weight": (128, 128, 1, 1),
    "layer2.0.downsample.0.weight": (128, 64, 1, 1),
    "layer2.0.downsample.1.weight": (128,),
    "layer2.0.downsample.1.running_mean": (128,),
    "layer2.4.bn3.weight": (128,),
    "layer3.0.conv1.weight": (256, 128, 1, 1),
    "layer3.0.downsample.0.weight": (256, 128, 1, 1),
    "layer3.4.conv2.weight": (256, 256, 3, 3),
    "fc_dense.weight": (10, 256),
    "fc_dense.bias": (10,),
}
# conv1+bn1 (6) + 15 blocks x 18 + 2 downsample branches x 6 + head (2)
OFFICIAL_NUM_KEYS = 290
ABSENT = ("layer1.0.downsample.0.weight", "layer2.1.downsample.0.weight", "layer3.5.conv1.weight",
          "layer4.0.conv1.weight", "fc.weight", "linear.weight")


@pytest.fixture(autouse=True)
def _one_thread() -> Iterator[None]:
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def _x() -> torch.Tensor:
    return torch.rand(2, 3, 32, 32, generator=torch.Generator().manual_seed(0)) * 2 - 1


def _random_official_dict(keys_shapes: dict[str, torch.Size], seed: int) -> dict[str, torch.Tensor]:
    """A 'published' checkpoint: random values, official names and shapes, valid BN statistics."""
    g = torch.Generator().manual_seed(seed)
    sd = {}
    for key, shape in keys_shapes.items():
        if key.endswith("num_batches_tracked"):
            sd[key] = torch.tensor(100, dtype=torch.long)
        elif key.endswith("running_var"):
            sd[key] = torch.rand(shape, generator=g) + 0.5
        else:
            sd[key] = torch.randn(shape, generator=g) * 0.1
    return sd


@pytest.mark.parametrize("num_classes", [10, 100])
def test_output_shape(num_classes: int) -> None:
    net = mi_resnet(num_classes=num_classes).eval()
    with torch.no_grad():
        out = net(_x())
    assert out.shape == (2, num_classes)
    assert torch.isfinite(out).all()


def test_state_dict_has_official_layout() -> None:
    sd = mi_resnet(num_classes=10).state_dict()
    for key, shape in OFFICIAL_SHAPES.items():
        assert key in sd, key
        assert tuple(sd[key].shape) == shape, key
    for key in ABSENT:
        assert key not in sd, key
    assert len(sd) == OFFICIAL_NUM_KEYS
    assert sd["bn1.num_batches_tracked"].dtype == torch.long


def test_official_dict_loads_strictly_and_sets_the_weights() -> None:
    shapes = {k: v.shape for k, v in mi_resnet(num_classes=10).state_dict().items()}
    assert {k: tuple(shapes[k]) for k in OFFICIAL_SHAPES} == OFFICIAL_SHAPES
    official = _random_official_dict(shapes, seed=1)

    net = mi_resnet(num_classes=10).eval()
    with torch.no_grad():
        before = net(_x())
    result = net.load_state_dict(official, strict=True)
    assert not result.missing_keys and not result.unexpected_keys
    with torch.no_grad():
        after = net(_x())
    assert not torch.allclose(before, after)
    for key, value in net.state_dict().items():
        assert torch.equal(value, official[key]), key

    # Same weights in a second fresh network give the same logits: the dict fully defines the net.
    other = mi_resnet(num_classes=10).eval()
    other.load_state_dict(official, strict=True)
    with torch.no_grad():
        assert torch.allclose(other(_x()), after)


def test_head_saved_as_fc_is_accepted() -> None:
    shapes = {k: v.shape for k, v in mi_resnet(num_classes=10).state_dict().items()}
    official = _random_official_dict(shapes, seed=2)
    renamed = {k.replace("fc_dense.", "fc."): v for k, v in official.items()}
    a, b = mi_resnet(num_classes=10).eval(), mi_resnet(num_classes=10).eval()
    a.load_state_dict(official, strict=True)
    b.load_state_dict(renamed, strict=True)
    assert "fc.weight" in renamed  # the caller's dict is left as it was
    with torch.no_grad():
        assert torch.equal(a(_x()), b(_x()))


def test_wrong_class_count_fails_at_load() -> None:
    sd100 = mi_resnet(num_classes=100).state_dict()
    net = mi_resnet(num_classes=10)
    with pytest.raises(RuntimeError, match=r"size mismatch for fc_dense\.weight"):
        net.load_state_dict(sd100, strict=True)


def test_missing_key_fails_strict_load() -> None:
    sd = mi_resnet(num_classes=10).state_dict()
    del sd["layer2.0.downsample.0.weight"]
    with pytest.raises(RuntimeError, match="layer2.0.downsample.0.weight"):
        mi_resnet(num_classes=10).load_state_dict(sd, strict=True)


def test_registered_with_half_normalization() -> None:
    from mi_bench.models import create_model, get_spec

    spec = get_spec("mi-resnet")
    assert spec.mean == (0.5, 0.5, 0.5) and spec.std == (0.5, 0.5, 0.5)
    wrapped = create_model("mi-resnet", num_classes=10).eval()
    pixels = (_x() + 1) / 2  # [0, 1] images, as the harness feeds them
    with torch.no_grad():  # the official code fed the net images scaled to [-1, 1]
        assert torch.allclose(wrapped(pixels), wrapped.net(_x()), atol=1e-5)
