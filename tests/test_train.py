import numpy as np
import pytest
import torch
import torch.nn.functional as F
from conftest import real_data_dir

from mi_bench.attacks.pgd import pgd
from mi_bench.data import load_split
from mi_bench.errors import UserError
from mi_bench.models.checkpoint import load_checkpoint
from mi_bench.train import TrainConfig, _train_step, augment, mix, soft_cross_entropy, train


def tiny_cfg(**kw):
    return TrainConfig(**{"method": "mixup", "arch": "small-cnn", "arch_kwargs": {"width": 8},
                          "epochs": 2, "batch_size": 50, "lr": 0.05, "seed": 3, **kw})


def test_mixup_at_lambda_one_is_cross_entropy():
    torch.manual_seed(0)
    logits, y = torch.randn(8, 10), torch.randint(0, 10, (8,))
    xm, ym = mix(torch.rand(8, 3, 4, 4), y, 1.0, torch.randperm(8), 10)
    assert torch.allclose(soft_cross_entropy(logits, ym), F.cross_entropy(logits, y))
    x = torch.rand(8, 3, 4, 4)
    perm = torch.randperm(8)
    xm, ym = mix(x, y, 0.3, perm, 10)
    assert torch.allclose(xm, 0.3 * x + 0.7 * x[perm])
    assert torch.allclose(ym.sum(1), torch.ones(8))


def test_augment_crops_and_flips_uint8():
    g = torch.Generator().manual_seed(0)
    imgs = torch.randint(0, 256, (64, 3, 32, 32), dtype=torch.uint8)
    out = augment(imgs, g)
    assert out.dtype == torch.uint8 and out.shape == imgs.shape
    assert not torch.equal(out, imgs)
    # every output is a shifted (and maybe flipped) window of the zero-padded input
    padded = F.pad(imgs[0], (4, 4, 4, 4))
    windows = [padded[:, i:i + 32, j:j + 32] for i in range(9) for j in range(9)]
    assert any(torch.equal(out[0], w) or torch.equal(out[0], w.flip(2)) for w in windows)


def test_iat_inner_examples_stay_in_ball_and_range(sample_train, tiny_model):
    x, y = sample_train.float_images(0, 32), sample_train.labels[:32]
    seen = []

    def spy_pgd(*args, **kwargs):
        out = pgd(*args, **kwargs)
        seen.append((args[1], out, kwargs["eps"]))
        return out

    import mi_bench.train as train_mod

    original, train_mod.pgd = train_mod.pgd, spy_pgd
    try:
        cfg = tiny_cfg(method="iat", pgd_steps=3)
        _train_step(tiny_model, cfg, x, y, torch.Generator().manual_seed(0),
                    np.random.default_rng(0), 10)
    finally:
        train_mod.pgd = original
    (x_in, x_adv, eps), = seen
    assert eps == pytest.approx(8 / 255)
    assert (x_adv - x_in).abs().max() <= eps + 1e-6
    assert x_adv.min() >= 0 and x_adv.max() <= 1
    assert (x_adv - x_in).abs().max() > eps / 2  # it did move


def test_resume_gives_the_same_weights(tmp_path, sample_train):
    split = sample_train.head(300)
    straight, _ = train(tiny_cfg(epochs=3), split, None, tmp_path / "a.pt", progress=False)
    train(tiny_cfg(epochs=3), split, None, tmp_path / "b.pt", progress=False, _stop_after=1)
    resumed, card = train(tiny_cfg(epochs=3), split, None, tmp_path / "b.pt", resume=True,
                          progress=False)
    for (k, va), vb in zip(straight.net.state_dict().items(), resumed.net.state_dict().values(),
                           strict=True):
        assert torch.equal(va, vb), k
    assert card["epochs"] == 3 and len(card["history"]) == 3
    _loaded, card2 = load_checkpoint(tmp_path / "b.pt")
    assert card2["data_sha256"] == split.sha256() and card2["method"] == "mixup"


def test_resume_with_other_settings_is_refused(tmp_path, sample_train):
    split = sample_train.head(100)
    train(tiny_cfg(epochs=2), split, None, tmp_path / "c.pt", progress=False, _stop_after=1)
    with pytest.raises(UserError, match=r"other settings \(lr: 0.05 there, 0.2 now\)"):
        train(tiny_cfg(epochs=2, lr=0.2), split, None, tmp_path / "c.pt", resume=True,
              progress=False)
    with pytest.raises(UserError, match="exists; pass --resume"):
        train(tiny_cfg(epochs=2), split, None, tmp_path / "c.pt", progress=False)


def test_resume_never_overwrites_a_finished_checkpoint(tmp_path, sample_train):
    """No resume state beside OUT: it is finished; --resume must not retrain it from scratch."""
    split = sample_train.head(100)
    out = tmp_path / "done.pt"
    train(tiny_cfg(epochs=1), split, None, out, progress=False)
    out.with_name(out.name + ".resume.pt").unlink()
    before = out.read_bytes()
    with pytest.raises(UserError, match="not an interrupted run; pass --overwrite"):
        train(tiny_cfg(epochs=1, arch="small-cnn"), split, None, out, resume=True,
              progress=False)
    assert out.read_bytes() == before
    train(tiny_cfg(epochs=2), split, None, out, progress=False, overwrite=True)
    assert load_checkpoint(out)[1]["epochs"] == 2, "--overwrite replaces it"
    assert not out.with_name(out.name + ".lock").exists()


@pytest.mark.parametrize("kw,match", [
    ({"method": "cutmix"}, "unknown method"),
    ({"epochs": 0}, "--epochs must be at least 1"),
    ({"schedule": "linear"}, "unknown schedule"),
    ({"lr": -1.0}, "must be a positive number"),
])
def test_bad_options(kw, match):
    with pytest.raises(UserError, match=match):
        tiny_cfg(**kw).validate()


def test_missing_train_split_is_an_error(tmp_path):
    (tmp_path / "cifar10").mkdir()
    np.savez(tmp_path / "cifar10" / "test.npz", images=np.zeros((2, 32, 32, 3), np.uint8),
             labels=np.zeros(2, np.int64))
    with pytest.raises(UserError, match="no cifar10 train split"):
        load_split("cifar10", "train", tmp_path, allow_sample=False)


@pytest.mark.slow
def test_short_training_on_real_data_beats_chance(tmp_path):
    root = real_data_dir()
    train_split = load_split("cifar10", "train", root).head(5000)
    test_split = load_split("cifar10", "test", root).head(1000)
    cfg = TrainConfig(method="mixup", arch="small-cnn", arch_kwargs={"width": 16}, epochs=3,
                      batch_size=100, lr=0.1, seed=0)
    _, card = train(cfg, train_split, None, tmp_path / "real.pt", progress=False,
                    final_eval=test_split)
    assert card["clean_acc"] > 0.35, card["clean_acc"]  # chance is 0.10
