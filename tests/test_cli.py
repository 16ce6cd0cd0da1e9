import json
import sys

import pytest
import torch

from mi_bench.cli import main


def cli(monkeypatch, capsys, *args):
    monkeypatch.setattr(sys, "argv", ["mi-bench", *args])
    code = 0
    try:
        main()
    except SystemExit as exc:
        code = exc.code or 0
    out = capsys.readouterr()
    return code, out.out, out.err


def test_eval_prints_accuracy_with_and_without_mi(monkeypatch, capsys, tiny_checkpoint):
    monkeypatch.setattr("mi_bench.data._warned_sample", False)  # said once per process
    code, out, err = cli(monkeypatch, capsys, "eval", "--checkpoint", str(tiny_checkpoint),
                         "--n-examples", "40", "--eval-repeats", "2", "--mi-n", "4", "--json")
    assert code == 0, err
    result = json.loads(out)
    none, mi = result["results"]
    assert none["defense"] == "none" and mi["defense"] == "mi-ol"
    assert mi["draws"] == 2 and mi["n"] == 40 and 0 <= mi["worst_acc"] <= mi["acc"] <= 1
    assert "embedded CIFAR-10 sample" in result["data"]
    assert "running on the embedded CIFAR-10 sample" in err


@pytest.mark.parametrize("args,message", [
    (["attack", "--suite", "transfer"], "needs --surrogate"),
    (["attack", "--eps", "eight"], "bad eps"),
    (["attack", "--eps", "1/2/3"], "bad eps"),
    (["attack", "--seeds", "0,0"], "distinct"),
    (["attack", "--seeds", "a,b"], "comma-separated integers"),
    (["attack", "--aa-attacks", "apgd-foo"], "unknown AutoAttack attack"),
    (["attack", "--variant", "apgd", "--targeted", "--suite", "eot-pgd"], "untargeted"),
    (["attack", "--checkpoint", "no-such-thing"], "neither a file nor a shipped checkpoint"),
    (["eval", "--checkpoint", "no-such-thing"], "neither a file nor a shipped checkpoint"),
    (["eval", "--mi-lambda", "2"], r"lie in \[0, 1\]"),
    (["train", "--out", "x.pt", "--data-dir", "/no/such/dir"], "does not exist"),
    (["train", "--out", "x.pt", "--arch-opt", "width"], "bad --arch-opt"),
])
def test_bad_input_gives_one_line_and_exit_2(monkeypatch, capsys, tiny_checkpoint, args,
                                             message):
    ckpt = [] if "--checkpoint" in args or args[0] == "train" else [
        "--checkpoint", str(tiny_checkpoint)]
    code, _out, err = cli(monkeypatch, capsys, *args, *ckpt)
    assert code == 2
    lines = [ln for ln in err.splitlines() if ln.startswith("error:")]
    assert len(lines) == 1 and "Traceback" not in err
    assert message in lines[0] or __import__("re").search(message, lines[0]), lines[0]


def test_train_refuses_to_overwrite(monkeypatch, capsys, tmp_path, tiny_checkpoint):
    monkeypatch.setenv("MI_BENCH_DATA", str(tmp_path))
    import numpy as np

    for split in ("train", "test"):
        np.savez(tmp_path / f"{split}.npz", images=np.zeros((100, 32, 32, 3), np.uint8),
                 labels=np.arange(100) % 10)
    out = tmp_path / "m.pt"
    out.write_bytes(b"x")
    code, _, err = cli(monkeypatch, capsys, "train", "--out", str(out), "--arch", "small-cnn",
                       "--epochs", "1")
    assert code == 2 and "exists; pass --resume" in err
    assert out.read_bytes() == b"x"


@pytest.mark.parametrize("which,n,version,eps", [("tiny", 6, "custom", 2 / 255),
                                                 ("autoattack-resnet18", 2, "standard", 8 / 255)])
def test_harness_autoattack_equals_direct_pyautoattack(tmp_path, tiny_checkpoint, which, n,
                                                       version, eps):
    """The harness's AutoAttack number is pyautoattack's own, same seed, same examples."""
    from pyautoattack import AutoAttack

    from mi_bench.attacks.runner import AttackConfig, AttackRun, batch_seeds
    from mi_bench.data import load_sample
    from mi_bench.models.zoo import load_classifier
    from mi_bench.results import ResultStore

    name = str(tiny_checkpoint) if which == "tiny" else which
    attacks = ["apgd-ce", "apgd-t"] if version == "custom" else None
    cfg = AttackConfig(checkpoint=name, defense="none", suite="autoattack", n_examples=n,
                       batch_size=n, eval_repeats=1, sanity=False, seeds=[0], eps=eps,
                       aa_version=version, aa_attacks=attacks)
    rec = AttackRun(cfg, ResultStore(tmp_path), progress=False, log=lambda m: None).run_seed(0)
    model, _ = load_classifier(name)
    test = load_sample("test")
    x, y = test.float_images(0, n), test.labels[:n]
    extra = {"attacks": attacks} if attacks else {}
    aa = AutoAttack(model, norm="Linf", eps=eps, version=version,
                    seed=batch_seeds(0, 0)["attack"], device="cpu", **extra)
    if version == "custom":
        aa.apgd.n_restarts = 1  # what the harness records as restarts=1
    x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=n)
    with torch.no_grad():
        direct = (model(x_adv).argmax(1) == y).float().mean().item()
        clean = (model(x).argmax(1) == y).float().mean().item()
    assert rec["attack"]["version"] == version
    assert rec["robust_acc"] == pytest.approx(direct) and rec["clean_acc"] == pytest.approx(clean)
    assert clean > 0  # a real model, so the comparison is not 0 == 0 by default
