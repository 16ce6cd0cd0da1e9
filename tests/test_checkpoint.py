import pytest
import torch

from mi_bench.errors import UserError
from mi_bench.models import create_model, list_models
from mi_bench.models.checkpoint import load_checkpoint, save_checkpoint
from mi_bench.models.zoo import load_classifier


def card_for(model, **extra):
    return {"arch": "small-cnn", "arch_kwargs": {"width": 8}, "num_classes": 10,
            "mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist(),
            "method": "mixup", **extra}


def test_roundtrip_keeps_weights_and_card(tmp_path, tiny_model):
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_model, card_for(tiny_model, seed=7))
    model, card = load_checkpoint(path)
    x = torch.rand(3, 3, 32, 32)
    assert card["seed"] == 7 and card["method"] == "mixup"
    assert torch.equal(model(x), tiny_model(x))
    assert not list(tmp_path.glob("*.tmp"))  # atomic write leaves no temp file


def test_wrong_architecture_or_classes(tmp_path, tiny_model):
    path = tmp_path / "m.pt"
    save_checkpoint(path, tiny_model, card_for(tiny_model))
    with pytest.raises(UserError, match="card says architecture 'small-cnn'"):
        load_checkpoint(path, arch="preact-resnet18")
    with pytest.raises(UserError, match="card says 10 classes"):
        load_checkpoint(path, num_classes=100)
    plain = tmp_path / "plain.pt"
    torch.save(tiny_model.net.state_dict(), plain)
    with pytest.raises(UserError, match="do not fit architecture 'small-cnn'.*size mismatch"):
        load_checkpoint(plain, arch="small-cnn", num_classes=100, width=8)
    with pytest.raises(UserError, match="do not fit architecture 'preact-resnet18'"):
        load_checkpoint(plain, arch="preact-resnet18")
    with pytest.raises(UserError, match="pass its architecture with --arch"):
        load_checkpoint(plain)


class Evil:
    def __reduce__(self):
        return (print, ("code ran",))


def test_loading_never_executes_code(tmp_path, capsys):
    path = tmp_path / "evil.pt"
    torch.save({"format": "mi-bench-checkpoint/1", "card": Evil()}, path)
    with pytest.raises(UserError, match="refused to load"):
        load_checkpoint(path)
    assert "code ran" not in capsys.readouterr().out


@pytest.mark.parametrize("content,match", [(None, "does not exist"),
                                           (b"garbage", "not a readable torch checkpoint")])
def test_missing_or_garbage_file(tmp_path, content, match):
    path = tmp_path / "x.pt"
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(UserError, match=match):
        load_checkpoint(path)


def test_official_mi_layout_plain_state_dict(tmp_path):
    torch.manual_seed(1)
    ref = create_model("mi-resnet", 10)
    path = tmp_path / "model_mixup.ckpt"
    torch.save(ref.net.state_dict(), path)
    model, card = load_checkpoint(path, arch="mi-resnet")
    x = torch.rand(2, 3, 32, 32)
    assert card["mean"] == [0.5, 0.5, 0.5] and card["num_classes"] == 10
    assert torch.allclose(model(x), ref.eval()(x))


def test_registry_builds_every_architecture():
    for name in list_models():
        kwargs = {"wrn-28-10": {"depth": 10, "widen": 1}, "preact-resnet18": {"width": 8},
                  "small-cnn": {"width": 8}}.get(name, {})
        out = create_model(name, 100, **kwargs).eval()(torch.rand(2, 3, 32, 32))
        assert out.shape == (2, 100), name
    with pytest.raises(UserError, match="unknown architecture"):
        create_model("resnet9000")


def test_autoattack_resnet18_ships_real_weights(sample_test):
    model, card = load_classifier("autoattack-resnet18")
    with torch.no_grad():
        acc = (model(sample_test.float_images(0, 100)).argmax(1) == sample_test.labels[:100])
    assert card["arch"] == "resnet18" and acc.float().mean() > 0.85


def test_unknown_checkpoint_names(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(UserError, match="neither a file nor a shipped checkpoint"):
        load_classifier("no-such-model")
    with pytest.raises(UserError, match="not found; mi-bench never downloads"):
        load_classifier("robustbench:Standard")
    with pytest.raises(UserError, match="no RobustBench model"):
        load_classifier("robustbench:NotAModel")
