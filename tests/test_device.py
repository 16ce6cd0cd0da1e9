"""Devices on a CPU machine: --device resolution, precision switches, the CUDA code paths' logic.

The CUDA-only branches (device choice per rank, TF32 off by default, bf16 autocast with
channels_last in training, partner pools and random starts moved to the device) run here with
stubs or on the CPU; tests/test_cuda.py repeats the real thing when a GPU is present.
"""

from __future__ import annotations

import pytest
import torch

from mi_bench import device as devmod
from mi_bench.attacks.pgd import _random_start
from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.defenses.mi import PartnerPool
from mi_bench.device import module_device, precision_label, resolve_device, set_precision
from mi_bench.errors import UserError
from mi_bench.models.checkpoint import load_checkpoint
from mi_bench.results import ResultStore
from mi_bench.train import TrainConfig, train


@pytest.fixture()
def fake_gpus(monkeypatch):
    """Pretend two CUDA devices exist (only the resolution logic runs, nothing touches them)."""
    monkeypatch.setattr(devmod, "cuda_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    monkeypatch.delenv("LOCAL_RANK", raising=False)
    monkeypatch.delenv("LOCAL_WORLD_SIZE", raising=False)


def test_cpu_and_auto_without_cuda(monkeypatch):
    monkeypatch.setattr(devmod, "cuda_available", lambda: False)
    assert resolve_device("cpu") == resolve_device("auto") == resolve_device(" CPU ") == \
        torch.device("cpu")
    with pytest.raises(UserError, match="CUDA is not available.*--device cpu or auto"):
        resolve_device("cuda")
    with pytest.raises(UserError, match="bad --device 'gpu'"):
        resolve_device("gpu")


def test_cuda_choices(fake_gpus, monkeypatch):
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 0)
    assert resolve_device("cuda:1") == torch.device("cuda", 1)
    with pytest.raises(UserError, match="CUDA device 2 does not exist"):
        resolve_device("cuda:2")
    monkeypatch.setenv("LOCAL_RANK", "1")  # torchrun's second local rank takes the second GPU
    monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")
    assert resolve_device("auto") == resolve_device("cuda") == torch.device("cuda", 1)
    with pytest.raises(UserError, match="all on one GPU"):
        resolve_device("cuda:0")


@pytest.fixture()
def restore_precision():
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    saved = (matmul.fp32_precision, conv.fp32_precision, torch.backends.cudnn.deterministic,
             torch.backends.cudnn.benchmark)
    yield
    matmul.fp32_precision, conv.fp32_precision = saved[:2]
    torch.backends.cudnn.deterministic, torch.backends.cudnn.benchmark = saved[2:]


def test_fp32_by_default_tf32_on_request(monkeypatch, restore_precision):
    monkeypatch.setattr(torch.cuda, "set_device", lambda d: None)
    cuda = torch.device("cuda", 0)
    torch.backends.cudnn.conv.fp32_precision = "tf32"  # PyTorch's own default for convolutions
    assert set_precision(cuda) == "fp32" == precision_label(cuda)
    assert torch.backends.cudnn.conv.fp32_precision == "ieee"
    assert torch.backends.cuda.matmul.fp32_precision == "ieee"
    assert torch.backends.cudnn.deterministic and not torch.backends.cudnn.benchmark
    assert set_precision(cuda, tf32=True, deterministic=False) == "tf32" == precision_label(cuda)
    assert torch.backends.cudnn.benchmark
    assert set_precision(torch.device("cpu"), tf32=True) == "fp32"  # TF32 is a CUDA feature


def test_module_device():
    assert module_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert module_device(torch.nn.Identity()) == torch.device("cpu")
    bn = torch.nn.BatchNorm1d(2, affine=False).to("meta")  # buffers only
    assert module_device(bn) == torch.device("meta")


def test_partner_pool_moves_once_and_draws_stay_on_the_cpu(sample_train):
    pool = PartnerPool(sample_train.head(200))
    idx = pool.sample(torch.tensor([[1, 2], [3, 4]]), torch.Generator().manual_seed(0))
    assert idx.device.type == "cpu"
    cpu = pool.float_images(idx, "cpu")
    assert cpu.shape == (4, 3, 32, 32) and cpu.dtype == torch.float32
    meta = pool.float_images(idx, torch.device("meta"))  # any other device: moved there once
    moved = pool.images
    assert meta.device.type == "meta" and moved.device.type == "meta" and moved.dtype == torch.uint8
    pool.float_images(idx, "meta")
    assert pool.images is moved


def test_random_starts_use_the_cpu_generator_on_any_device():
    x = torch.zeros(2, 3, 4, 4)
    for norm in ("Linf", "L2"):
        g_cpu, g_other = torch.Generator().manual_seed(5), torch.Generator().manual_seed(5)
        start = _random_start(x, 0.1, norm, g_cpu)
        other = _random_start(x.to("meta"), 0.1, norm, g_other)
        assert other.device.type == "meta" and other.shape == start.shape
        assert torch.equal(g_cpu.get_state(), g_other.get_state())  # the same draws were taken


def test_training_with_bf16_autocast_and_channels_last_on_the_cpu(tmp_path, sample_train):
    """The CUDA training recipe (bf16 autocast, channels_last), run on the CPU."""
    cfg = TrainConfig(method="iat", arch="small-cnn", arch_kwargs={"width": 8}, epochs=1,
                      batch_size=50, lr=0.05, seed=1)
    split = sample_train.head(100)
    amp_model, card = train(cfg, split, None, tmp_path / "amp.pt", progress=False,
                            device="cpu", amp=True, channels_last=True)
    plain, _ = train(cfg, split, None, tmp_path / "fp32.pt", progress=False, device="cpu")
    conv = amp_model.net[0].weight
    assert conv.dtype == torch.float32 and conv.is_contiguous(memory_format=torch.channels_last)
    assert card["precision"] == "bf16 autocast" and card["world_size"] == 1
    assert card["device"] == "cpu"
    loss = card["history"][0]["loss"]
    assert 0 < loss < 10  # finite (NaN fails every comparison)
    assert not torch.equal(conv, plain.net[0].weight)  # autocast really ran in bf16
    loaded, _ = load_checkpoint(tmp_path / "amp.pt")
    assert torch.equal(loaded.net[0].weight, conv.contiguous())


def test_attack_record_names_its_device_outside_the_identity(tmp_path, tiny_checkpoint):
    cfg = AttackConfig(checkpoint=str(tiny_checkpoint), defense="none", suite="pgd",
                       n_examples=4, batch_size=4, eval_repeats=1, sanity=False, steps=2)
    run = AttackRun(cfg, ResultStore(tmp_path), progress=False, log=lambda m: None,
                    device="cpu")
    rec = run.run_seed(0)
    assert rec["device"] == "cpu" and rec["precision"] == "fp32"
    assert "device" not in run.identity(0)


@pytest.mark.parametrize("command", ["attack", "eval", "train"])
@pytest.mark.parametrize("spec,message", [("cuda", "CUDA is not available"),
                                          ("tpu", "bad --device 'tpu'")])
def test_cli_device_errors_are_one_line(monkeypatch, capsys, tmp_path, command, spec, message):
    import sys

    from mi_bench.cli import main

    monkeypatch.setattr(devmod, "cuda_available", lambda: False)
    extra = ["--out", str(tmp_path / "x.pt")] if command == "train" else []
    monkeypatch.setattr(sys, "argv", ["mi-bench", command, "--device", spec, *extra])
    with pytest.raises(SystemExit) as exc:
        main()
    err = capsys.readouterr().err
    assert exc.value.code == 2 and "Traceback" not in err
    (line,) = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert message in line
    assert not list(tmp_path.iterdir())  # nothing written
