"""Bad input, every command: one ``error:`` line, exit status 2, no traceback, nothing written.

Each case runs the real CLI in process (``mi_bench.cli.run``) with its output folder under
``tmp_path``; afterwards that folder must not exist (or, for a pre-existing store, be unchanged).
"""

from __future__ import annotations

import json
import shutil

import numpy as np
import pytest
import torch

from mi_bench import cli
from mi_bench.data import load_sample

MISSING = object()


@pytest.fixture(scope="module")
def files(tmp_path_factory, tiny_checkpoint):
    """Bad and good input files shared by the cases (made once)."""
    root = tmp_path_factory.mktemp("inputs")
    obj = torch.load(tiny_checkpoint, weights_only=True)
    nan = {**obj, "state_dict": {k: v.clone() for k, v in obj["state_dict"].items()}}
    first = next(k for k, v in nan["state_dict"].items() if v.is_floating_point())
    nan["state_dict"][first][0] = float("nan")
    torch.save(nan, root / "nan.pt")
    torch.save(obj["state_dict"], root / "plain.pt")
    (root / "text.pt").write_text("not a checkpoint")
    (root / "a-file").write_text("x")
    empty = root / "empty"
    empty.mkdir()
    for split in ("train", "test"):
        np.savez(empty / f"{split}.npz", images=np.zeros((0, 32, 32, 3), np.uint8),
                 labels=np.zeros(0, np.int64))
    small = root / "small"  # 200 train / 50 test images in the npz layout, for train cases
    small.mkdir()
    tr, te = load_sample("train"), load_sample("test")
    for name, split, n in (("train", tr, 200), ("test", te, 50)):
        np.savez(small / f"{name}.npz", images=split.images[:n].permute(0, 2, 3, 1).numpy(),
                 labels=split.labels[:n].numpy())
    shutil.copy(tiny_checkpoint, root / "finished.pt")
    shutil.copy(tiny_checkpoint, root / "ckpt-as-resume.pt")
    shutil.copy(tiny_checkpoint, root / "ckpt-as-resume.pt.resume.pt")
    return {"ckpt": str(tiny_checkpoint), "root": root}


def run_cli(capsys, args: list[str]) -> tuple[int, list[str]]:
    code = cli.run(args)
    err = capsys.readouterr().err
    return code, [ln for ln in err.splitlines() if ln.strip()]


ATTACK = ["attack", "--suite", "pgd", "--steps", "1", "--n-examples", "4", "--batch-size", "4",
          "--eval-repeats", "1", "--mi-n", "2", "--no-sanity", "--no-progress"]
TRAIN = ["train", "--method", "erm", "--arch", "small-cnn", "--arch-opt", "width=4",
         "--epochs", "1", "--batch-size", "50", "--no-progress"]

# (id, argv with {ckpt} {root} {out} placeholders, text the error line must contain)
CASES = [
    # attack: numbers and lists
    ("attack-batch-0", ATTACK + ["--batch-size", "0"], "--batch-size"),
    ("attack-n-0", ATTACK + ["--n-examples", "0"], "--n-examples"),
    ("attack-n-negative", ATTACK + ["--n-examples", "-990"], "--n-examples"),
    ("attack-n-too-many", ATTACK + ["--n-examples", "20000"], "has only"),
    ("attack-seeds-negative", ATTACK + ["--seeds", "-1"], "--seeds"),
    ("attack-seeds-repeat", ATTACK + ["--seeds", "0,0"], "distinct"),
    ("attack-seeds-text", ATTACK + ["--seeds", "a"], "--seeds"),
    ("attack-eps-2-linf", ATTACK + ["--eps", "2"], "outside (0, 1]"),
    ("attack-eps-list-bad-entry", ATTACK + ["--eps", "8/255,8/2S5"], "8/2S5"),
    ("attack-eps-zero", ATTACK + ["--eps", "0"], "outside"),
    ("attack-eps-negative", ATTACK + ["--eps", "-1/255"], "non-negative"),
    ("attack-eps-empty-entry", ATTACK + ["--eps", "8/255,"], "bad --eps"),
    ("attack-eps-l2-huge", ATTACK + ["--norm", "L2", "--eps", "100"], "for L2"),
    ("attack-eval-repeats-0", ATTACK + ["--eval-repeats", "0"], "--eval-repeats"),
    ("attack-draws-0", ATTACK + ["--attack-draws", "0"], "--attack-draws"),
    ("attack-steps-0", ATTACK + ["--steps", "0"], "--steps"),
    ("attack-restarts-0", ATTACK + ["--restarts", "0"], "--restarts"),
    ("attack-eot-0", ATTACK + ["--eot-iter", "0"], "--eot-iter"),
    ("attack-step-size-negative", ATTACK + ["--step-size", "-1/255"], "non-negative"),
    ("attack-step-size-zero", ATTACK + ["--step-size", "0"], "--step-size"),
    ("attack-max-batch-0", ATTACK + ["--max-batch", "0"], "--max-batch"),
    # attack: suites and AutoAttack
    ("attack-aa-custom-empty", ATTACK + ["--suite", "autoattack", "--aa-version", "custom"],
     "--aa-attacks"),
    ("attack-aa-unknown", ATTACK + ["--suite", "autoattack", "--aa-attacks", "nosuch"],
     "nosuch"),
    ("attack-transfer-no-surrogate", ATTACK + ["--suite", "transfer"], "--surrogate"),
    ("attack-transfer-bad-surrogate", ATTACK + ["--suite", "transfer", "--surrogate", "nosuch"],
     "nosuch"),
    ("attack-apgd-targeted", ATTACK + ["--variant", "apgd", "--targeted"], "untargeted"),
    ("attack-suite-unknown", ATTACK + ["--suite", "nosuch"], "--suite"),
    ("attack-preset-wrong-suite", ATTACK + ["--attack-preset", "tramer"], "--suite eot-pgd"),
    ("attack-preset-clash", ATTACK + ["--suite", "eot-pgd", "--attack-preset", "tramer",
                                      "--eot-iter", "3"], "--eot-iter"),
    ("attack-preset-unknown", ATTACK + ["--suite", "eot-pgd", "--attack-preset", "nosuch"],
     "--attack-preset"),
    # attack: checkpoints and data
    ("attack-ckpt-empty", ATTACK + ["--checkpoint", ""], "--checkpoint is empty"),
    ("attack-ckpt-unknown", ATTACK + ["--checkpoint", "nosuch"], "neither a file"),
    ("attack-ckpt-rb-unknown", ATTACK + ["--checkpoint", "robustbench:NoSuchModel"],
     "NoSuchModel"),
    ("attack-ckpt-nan", ATTACK + ["--checkpoint", "{root}/nan.pt"], "NaN or inf"),
    ("attack-ckpt-plain-no-arch", ATTACK + ["--checkpoint", "{root}/plain.pt"], "--arch"),
    ("attack-ckpt-plain-wrong-arch",
     ATTACK + ["--checkpoint", "{root}/plain.pt", "--arch", "preact-resnet18"], "do not fit"),
    ("attack-ckpt-text", ATTACK + ["--checkpoint", "{root}/text.pt"], "not a readable"),
    ("attack-arch-unknown", ATTACK + ["--arch", "nosuch"], "--arch"),
    ("attack-data-missing", ATTACK + ["--data-dir", "{root}/nowhere"], "does not exist"),
    ("attack-data-empty", ATTACK + ["--data-dir", "{root}/empty"], "no images"),
    # attack: defenses
    ("attack-defense-unknown", ATTACK + ["--defense", "nosuch"], "--defense"),
    ("attack-mi-flag-on-baseline", ["attack", "--defense", "gaussian-noise", "--mi-n", "4"],
     "--mi-n"),
    ("attack-noise-negative", ATTACK[:-4] + ["--no-sanity", "--defense", "gaussian-noise",
                                              "--defense-opt", "sigma=-1"], "noise scale"),
    ("attack-noise-nan", ["attack", "--defense", "uniform-noise", "--defense-opt", "sigma=nan"],
     "noise scale"),
    ("attack-rotation-200", ["attack", "--defense", "rotation", "--defense-opt",
                             "max_degrees=200"], "180"),
    ("attack-crop-range", ["attack", "--defense", "xie", "--defense-opt", "min_size=30"],
     "min (30)"),
    ("attack-crop-too-big", ["attack", "--defense", "guo", "--defense-opt", "max_size=40"],
     "max (40)"),
    ("attack-draws-opt-0", ["attack", "--defense", "rotation", "--defense-opt", "draws=0"],
     "draws"),
    ("attack-defense-opt-unknown", ["attack", "--defense", "xie", "--defense-opt", "nokey=1"],
     "nokey"),
    ("attack-defense-opt-no-value", ["attack", "--defense", "xie", "--defense-opt", "sigma"],
     "key=value"),
    ("attack-defense-opt-type", ["attack", "--defense", "xie", "--defense-opt", "min_size=a"],
     "expected int"),
    ("attack-mi-n-0", ATTACK + ["--mi-n", "0"], "n_samples"),
    ("attack-mi-lambda", ATTACK + ["--mi-lambda", "1.5"], "lam"),
    ("attack-mi-combined-n", ["attack", "--defense", "mi-combined", "--mi-n", "4"],
     "mi-combined"),
    ("attack-none-with-opt", ["attack", "--defense", "none", "--defense-opt", "a=1"],
     "no options"),
    # attack: output
    ("attack-out-is-file", ATTACK + ["--out", "{root}/a-file"], "is a file"),
    ("attack-out-unwritable", ATTACK + ["--out", "{root}/a-file/store"], "not writable"),
    # eval
    ("eval-batch-0", ["eval", "--batch-size", "0"], "--batch-size"),
    ("eval-max-batch-0", ["eval", "--max-batch", "0"], "--max-batch"),
    ("eval-seed-negative", ["eval", "--seed", "-1"], "--seed"),
    ("eval-n-negative", ["eval", "--n-examples", "-990"], "--n-examples"),
    ("eval-repeats-0", ["eval", "--eval-repeats", "0"], "--eval-repeats"),
    ("eval-data-empty", ["eval", "--data-dir", "{root}/empty"], "no images"),
    ("eval-ckpt-nan", ["eval", "--checkpoint", "{root}/nan.pt"], "NaN or inf"),
    ("eval-plain-needs-arch", ["eval", "--checkpoint", "{root}/plain.pt"], "--arch"),
    # train
    ("train-epochs-0", TRAIN + ["--epochs", "0", "--out", "{out}/m.pt"], "--epochs"),
    ("train-lr-nan", TRAIN + ["--lr", "nan", "--out", "{out}/m.pt"], "--lr"),
    ("train-seed-negative", TRAIN + ["--seed", "-3", "--out", "{out}/m.pt"], "--seed"),
    ("train-method-unknown", TRAIN + ["--method", "nosuch", "--out", "{out}/m.pt"], "--method"),
    ("train-arch-unknown", ["train", "--arch", "nosuch", "--out", "{out}/m.pt"], "nosuch"),
    ("train-eps-2", TRAIN + ["--eps", "2", "--out", "{out}/m.pt"], "--eps"),
    ("train-arch-opt", TRAIN + ["--arch-opt", "width", "--out", "{out}/m.pt"], "key=value"),
    ("train-resume-and-overwrite", TRAIN + ["--resume", "--overwrite", "--out", "{out}/m.pt"],
     "contradict"),
    ("train-out-unwritable", TRAIN + ["--data-dir", "{root}/small", "--out",
                                      "{root}/a-file/m.pt"], "a-file"),
    ("train-resume-finished", TRAIN + ["--data-dir", "{root}/small", "--resume", "--out",
                                       "{root}/finished.pt"], "--overwrite"),
    ("train-exists", TRAIN + ["--data-dir", "{root}/small", "--out", "{root}/finished.pt"],
     "exists"),
    ("train-resume-is-checkpoint", TRAIN + ["--data-dir", "{root}/small", "--resume", "--out",
                                            "{root}/ckpt-as-resume.pt"], "not a mi-bench resume"),
    ("train-no-data", TRAIN + ["--out", "{out}/m.pt"], "no cifar10 data"),
    # report and leaderboard
    ("report-empty-store", ["report", "--results", "{out}/none", "--out", "{out}/rep"],
     "no records"),
    ("report-bad-format", ["report", "--results", "{out}/none", "--format", "pdf",
                           "--out", "{out}/rep"], "pdf"),
    ("report-bad-baseline", ["report", "--baseline", "nosuch", "--out", "{out}/rep"],
     "nosuch"),
    ("leaderboard-threat", ["leaderboard", "--threat", "L7"], "--threat"),
    ("unknown-command", ["nosuch"], "nosuch"),
]


@pytest.mark.parametrize("case_id,argv,expect", CASES, ids=[c[0] for c in CASES])
def test_bad_input_is_one_line_exit_2_nothing_written(case_id, argv, expect, files, tmp_path,
                                                      capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a default --out ('results', 'report') would land here
    before = {p.name for p in files["root"].rglob("*")}
    stamps = {p: p.stat().st_mtime_ns for p in files["root"].rglob("*") if p.is_file()}
    out = tmp_path / "out"
    args = [a.format(ckpt=files["ckpt"], root=files["root"], out=out) for a in argv]
    if "--checkpoint" not in args and args[0] in ("attack", "eval"):
        args += ["--checkpoint", files["ckpt"]]
    if args[0] == "attack" and "--out" not in args:
        args += ["--out", str(out / "store")]
    code, lines = run_cli(capsys, args)
    errors = [ln for ln in lines if ln.startswith("error:")]
    assert code == 2, lines
    assert len(errors) == 1 and expect in errors[0], lines
    assert all(ln.startswith(("error:", "note:")) for ln in lines), lines
    assert not any("Traceback" in ln for ln in lines)
    assert not out.exists(), f"{case_id} wrote {list(out.rglob('*'))}"
    assert list(tmp_path.iterdir()) == [], "written into the working folder"
    assert {p.name for p in files["root"].rglob("*")} == before
    assert all(p.stat().st_mtime_ns == t for p, t in stamps.items())


def test_at_least_40_bad_inputs():
    assert len(CASES) >= 40 and len({c[0] for c in CASES}) == len(CASES)


def _store_with_a_record(tmp_path, capsys, ckpt) -> tuple:
    store = tmp_path / "store"
    code, lines = run_cli(capsys, ATTACK + ["--checkpoint", ckpt, "--out", str(store)])
    assert code == 0, lines
    (rec,) = sorted((store / "records").glob("*.json"))
    return store, rec


def test_damaged_record_elsewhere_fails_before_any_work(tmp_path, capsys, tiny_checkpoint):
    store, rec = _store_with_a_record(tmp_path, capsys, str(tiny_checkpoint))
    rec.write_text(rec.read_text()[:40])  # truncated
    listing = sorted(p.relative_to(store) for p in store.rglob("*"))
    code, lines = run_cli(capsys, ATTACK + ["--checkpoint", str(tiny_checkpoint), "--eps",
                                            "4/255", "--out", str(store)])
    assert code == 2 and len(lines) == 1 and rec.name in lines[0] and "damaged" in lines[0]
    assert sorted(p.relative_to(store) for p in store.rglob("*")) == listing


def test_own_record_with_missing_arrays_fails_on_rerun(tmp_path, capsys, tiny_checkpoint):
    store, rec = _store_with_a_record(tmp_path, capsys, str(tiny_checkpoint))
    rec.with_suffix(".npz").unlink()
    code, lines = run_cli(capsys, ATTACK + ["--checkpoint", str(tiny_checkpoint), "--out",
                                            str(store)])
    assert code == 2 and len(lines) == 1 and "damaged" in lines[0] and ".npz" in lines[0]


def test_damaged_record_in_report(tmp_path, capsys, tiny_checkpoint):
    store, rec = _store_with_a_record(tmp_path, capsys, str(tiny_checkpoint))
    rec.write_text("{")
    code, lines = run_cli(capsys, ["report", "--results", str(store), "--out",
                                   str(tmp_path / "rep")])
    assert code == 2 and len(lines) == 1 and rec.name in lines[0]
    assert not (tmp_path / "rep").exists()


def test_interrupt_prints_the_project_line(monkeypatch, capsys):
    def boom(*a, **k):
        raise KeyboardInterrupt

    monkeypatch.setattr("mi_bench.attacks.runner.AttackRun.run_seed", boom)
    code, lines = run_cli(capsys, ["attack", "--n-examples", "1", "--no-sanity", "--out",
                                   "/tmp/never-used-store-mi-bench"])
    shutil.rmtree("/tmp/never-used-store-mi-bench", ignore_errors=True)
    assert code == 130 and lines[-1].startswith("interrupted; finished work is saved")
    assert not any("Aborted" in ln for ln in lines)


def test_record_json_is_valid_after_a_good_run(tmp_path, capsys, tiny_checkpoint):
    """The control case: the same options without the fault succeed and write a record."""
    _, rec = _store_with_a_record(tmp_path, capsys, str(tiny_checkpoint))
    data = json.loads(rec.read_text())
    assert data["protocol"] >= 2 and data["defense_settings"]["pool"].startswith("cifar10/train")
