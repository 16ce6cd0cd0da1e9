"""The CUDA paths on a real GPU (skipped without one; ``benchmarks/gpu_check.sh`` runs them).

Their logic is tested on the CPU in tests/test_device.py; here the same draws and the same
numbers must come out of a GPU.
"""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from mi_bench.attacks.pgd import _random_start
from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.defenses.mi import MIConfig, MixupInference
from mi_bench.device import set_precision
from mi_bench.models.checkpoint import load_checkpoint
from mi_bench.results import ResultStore
from mi_bench.train import TrainConfig, train

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
CUDA = torch.device("cuda", 0)


@pytest.fixture(autouse=True)
def _fp32():
    set_precision(CUDA)  # as the commands do: no TF32


def test_mi_draws_the_same_partners_on_cpu_and_cuda(tiny_model, sample_train, sample_test):
    x = sample_test.float_images(0, 8)
    out = {}
    for dev in ("cpu", "cuda"):
        model = tiny_model.to(dev)
        mi = MixupInference(model, sample_train, MIConfig(n_samples=6),
                            torch.Generator().manual_seed(3), output="prob")
        probs = mi(x.to(dev))
        out[dev] = (probs.cpu(), mi.last_draw["ol_index"].clone(), mi.pool.images.device.type)
    assert torch.equal(out["cpu"][1], out["cuda"][1])
    assert out["cuda"][2] == "cuda"  # the pool lives on the GPU
    assert torch.allclose(out["cpu"][0], out["cuda"][0], atol=1e-5)


def test_pgd_random_starts_are_the_cpu_draws():
    x = torch.rand(4, 3, 8, 8)
    for norm in ("Linf", "L2"):
        a = _random_start(x, 0.1, norm, torch.Generator().manual_seed(1))
        b = _random_start(x.cuda(), 0.1, norm, torch.Generator().manual_seed(1))
        assert b.is_cuda and torch.allclose(a, b.cpu(), atol=1e-6)


def _records_agree(tmp_path, ckpt, **kw) -> float:
    cfg = dict(checkpoint=str(ckpt), n_examples=8, batch_size=4, eval_repeats=2, sanity=True,
               defense_opts={"n_samples": 4}, attack_draws=1, **kw)
    recs, examples = {}, {}
    for dev in ("cpu", "cuda"):
        store = ResultStore(tmp_path / dev)
        run = AttackRun(AttackConfig(**cfg), store, progress=False, log=lambda m: None,
                        device=dev)
        recs[dev] = run.run_seed(0)
        examples[dev] = store.load_examples(recs[dev]["key"])
    assert recs["cpu"]["key"] == recs["cuda"]["key"]  # CPU and GPU runs share records
    assert recs["cuda"]["device"].startswith("cuda:0") and recs["cuda"]["precision"] == "fp32"
    agree = [np.mean(examples["cpu"][k] == examples["cuda"][k]) for k in ("clean", "adv")]
    return float(min(agree))


def test_eot_pgd_on_cuda_agrees_with_cpu(tmp_path, tiny_checkpoint):
    assert _records_agree(tmp_path, tiny_checkpoint, suite="eot-pgd", steps=5, eot_iter=2) >= 0.9


def test_autoattack_on_cuda_agrees_with_cpu(tmp_path, tiny_checkpoint):
    assert _records_agree(tmp_path, tiny_checkpoint, suite="autoattack", eot_iter=2) >= 0.9


def test_training_on_cuda_runs_bf16_channels_last(tmp_path, sample_train):
    cfg = TrainConfig(method="iat", arch="small-cnn", arch_kwargs={"width": 8}, epochs=1,
                      batch_size=50, lr=0.05, seed=0)
    model, card = train(cfg, sample_train.head(200), sample_train.head(100), tmp_path / "g.pt",
                        progress=False, device="cuda")
    assert card["precision"] == "bf16 autocast" and card["device"].startswith("cuda:0")
    assert model.net[0].weight.is_cuda
    assert model.net[0].weight.is_contiguous(memory_format=torch.channels_last)
    loaded, _ = load_checkpoint(tmp_path / "g.pt")  # a GPU checkpoint loads on the CPU
    assert torch.equal(loaded.net[0].weight, model.net[0].weight.cpu().contiguous())


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs two GPUs (NCCL, one per rank)")
def test_two_gpu_ranks_write_the_single_gpu_record(tmp_path, tiny_checkpoint):
    args = ["attack", "--checkpoint", str(tiny_checkpoint), "--suite", "eot-pgd", "--steps", "5",
            "--eot-iter", "2", "--mi-n", "4", "--attack-mi-samples", "1", "--n-examples", "16",
            "--batch-size", "4", "--eval-repeats", "2", "--device", "cuda", "--no-progress"]
    two = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc-per-node", "2", "-m", "mi_bench.cli", *args, "--out",
                          str(tmp_path / "two")], capture_output=True, text=True, check=False)
    assert two.returncode == 0, two.stderr[-3000:]
    one = subprocess.run([sys.executable, "-m", "mi_bench.cli", *args, "--out",
                          str(tmp_path / "one")], capture_output=True, text=True, check=False)
    assert one.returncode == 0, one.stderr[-3000:]
    (a,), (b,) = ResultStore(tmp_path / "two").records(), ResultStore(tmp_path / "one").records()
    assert a["key"] == b["key"] and a["forwards"] == b["forwards"]
    ea, eb = (ResultStore(tmp_path / s).load_examples(a["key"]) for s in ("two", "one"))
    assert np.mean(ea["adv"] == eb["adv"]) >= 0.9
