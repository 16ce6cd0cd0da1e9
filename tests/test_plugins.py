"""Plug-in defenses and models: entry points, ``module:Name``, ``file.py:Name``, factories; their
record identity; one error line for a broken plug-in; the randomness check."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from plugin_pkg import make_package

from mi_bench.cli import run
from mi_bench.defenses import canonical_name, defense_names, get_defense
from mi_bench.defenses.randomness import RandomnessMismatch, check_randomness
from mi_bench.errors import UserError
from mi_bench.results import ResultStore, record_key

REPO = Path(__file__).resolve().parents[1]
FAST = ["--n-examples", "4", "--batch-size", "4", "--eval-repeats", "2", "--no-sanity",
        "--no-progress", "--steps", "2"]


@pytest.fixture()
def plugpkg(tmp_path, monkeypatch):
    root = make_package(tmp_path / "site")
    monkeypatch.syspath_prepend(str(root))
    yield root
    for name in [m for m in sys.modules if m == "tmpplug" or m.startswith("tmpplug.")]:
        del sys.modules[name]


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = run(list(args))
    out = capsys.readouterr()
    return code, out.out, out.err


def one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert "Traceback" not in err
    return lines[0]


SWEEP = """
[sweep]
plots = false

[stores.main]
path = "store"
report = "report"

[defaults]
eval_repeats = 2
batch_size = 4
sanity = false
steps = 2
eot_iter = 1
attack_draws = 1
n = 4
eps = ["8/255"]
surrogates = ["{ckpt}"]

[[grid]]
name = "entry-point"
checkpoints = ["{ckpt}"]
defenses = ["tmp-noise"]
suites = ["pgd", "eot-pgd", "autoattack", "transfer"]

[[grid]]
name = "module-name"
checkpoints = ["{ckpt}"]
defenses = ["tmpplug.defs:Blur"]
suites = ["pgd", "eot-pgd", "autoattack", "transfer"]
aa_version = "custom"
aa_attacks = ["apgd-ce"]
"""


def test_entry_point_and_module_plugins_run_every_suite_through_the_sweep(
        plugpkg, tmp_path, capsys, tiny_checkpoint):
    assert canonical_name("tmp-noise") == "tmpplug.defs:Noise"  # found through its entry point
    spec = tmp_path / "spec.toml"
    spec.write_text(SWEEP.replace("{ckpt}", str(tiny_checkpoint)))
    code, _, err = cli(capsys, "sweep", str(spec), "--no-progress", "--device", "cpu")
    assert code == 0, err
    records = ResultStore(tmp_path / "store").records()
    got = sorted((r["defense"], r["suite"]) for r in records)
    assert got == sorted((d, s) for d in ("tmpplug.defs:Noise", "tmpplug.defs:Blur")
                         for s in ("pgd", "eot-pgd", "autoattack", "transfer"))
    noise = [r for r in records if r["defense"] == "tmpplug.defs:Noise"]
    assert all(r["defense_settings"] == {"sigma": 0.05, "draws": 2} for r in noise)
    assert all(r["defense_randomized"] for r in noise)
    aa = next(r for r in noise if r["suite"] == "autoattack")
    assert aa["attack"]["version"] == "ensemble"  # randomized: the ensemble, not standard
    blur = [r for r in records if r["defense"] == "tmpplug.defs:Blur"]
    assert not any(r["defense_randomized"] for r in blur)
    assert (tmp_path / "report" / "report.md").is_file()
    # the CLI, naming the plug-in by entry point or by path, finds the sweep's record
    store = str(tmp_path / "store")
    for name in ("tmp-noise", "tmpplug.defs:Noise"):
        code, _, err = cli(capsys, "attack", "--checkpoint", str(tiny_checkpoint), "--defense",
                           name, "--suite", "pgd", "--out", store, *FAST)
        assert code == 0 and "exists, skipped" in err, err


def test_a_file_plugin_and_its_options(plugpkg, tmp_path, capsys, tiny_checkpoint):
    path = plugpkg / "tmpplug" / "defs.py"
    code, _, err = cli(capsys, "attack", "--checkpoint", str(tiny_checkpoint), "--defense",
                       f"{path}:Noise", "--defense-opt", "sigma=0.1", "--suite", "pgd",
                       "--out", str(tmp_path / "s"), *FAST)
    assert code == 0, err
    (rec,) = ResultStore(tmp_path / "s").records()
    assert rec["defense"] == f"{path.resolve()}:Noise"
    assert rec["defense_settings"] == {"sigma": 0.1, "draws": 2}  # "0.1" became a float
    assert rec["defense_label"] == "Noise (sigma=0.1, draws=2)"


def test_two_plugins_with_one_short_name_never_share_records(plugpkg, tiny_checkpoint):
    from mi_bench.attacks.runner import AttackConfig, AttackRun

    keys = set()
    for ref in ("tmpplug.defs:Noise", "tmpplug.other:Noise", "tmp-noise"):
        cfg = AttackConfig(checkpoint=str(tiny_checkpoint), defense=ref, suite="pgd",
                           n_examples=4, batch_size=4, steps=2)
        run_ = AttackRun(cfg, ResultStore("unused"), progress=False, log=lambda m: None)
        keys.add(record_key(run_.identity(0)))
    assert len(keys) == 2  # other:Noise differs; the entry point is defs:Noise itself


def test_builtin_identities_do_not_change():
    for name in defense_names():
        assert canonical_name(name) == name


@pytest.mark.parametrize(("defense", "needle"), [
    ("nosuchpkg.mod:Thing", "cannot import module 'nosuchpkg'"),
    ("tmpplug.defs:Missing", "module tmpplug.defs has no 'Missing'"),
    ("tmpplug.broken:NoWrap", "breaks the Defense protocol: missing wrap, randomized (a bool)"),
    ("tmpplug.broken:function", "is a function, not a class"),
    ("tmpplug.fails:Any", "importing tmpplug.fails failed: RuntimeError: plug-in bug at import"),
    ("no/such/file.py:Any", "file.py does not exist"),
    ("tmpplug.defs:LiesDeterministic", "says randomized = False, but two forwards"),
    ("tmpplug.defs:LiesRandomized", "says randomized = True, but 4 forwards"),
    ("tmpplug.defs:GlobalRandom", "two wraps with the same seed gave different outputs"),
])
def test_a_broken_plugin_is_one_error_line(plugpkg, tmp_path, capsys, tiny_checkpoint, defense,
                                           needle):
    code, _, err = cli(capsys, "attack", "--checkpoint", str(tiny_checkpoint), "--defense",
                       defense, "--suite", "pgd", "--out", str(tmp_path / "s"), *FAST)
    assert code == 2
    assert needle in one_error_line(err)
    assert not (tmp_path / "s" / "records").exists()


def test_a_broken_plugin_in_a_sweep_names_the_key(plugpkg, tmp_path, capsys, tiny_checkpoint):
    spec = tmp_path / "spec.toml"
    spec.write_text(SWEEP.replace("{ckpt}", str(tiny_checkpoint)).replace(
        "tmpplug.defs:Blur", "tmpplug.broken:NoWrap"))
    code, _, err = cli(capsys, "sweep", str(spec), "--dry-run")
    line = one_error_line(err)
    assert code == 2 and "defenses = 'tmpplug.broken:NoWrap'" in line and "missing wrap" in line


def test_builtin_defenses_pass_the_randomness_check(tiny_model, sample_test):
    x = sample_test.float_images(0, 4)
    card = {"dataset": "cifar10", "num_classes": 10}
    for name in defense_names():
        d = get_defense(name, card, {"n_samples": "3"} if name in ("mi-pl", "mi-ol") else {})
        seen = check_randomness(d, tiny_model, x, seed=0)
        assert (seen["max_diff"] > 0) == d.randomized, name
        assert seen["replay_diff"] == 0, name


def test_model_factories(plugpkg, tmp_path, capsys):
    code, _, err = cli(capsys, "attack", "--checkpoint", "tmpplug.models:build", "--defense",
                       "none", "--suite", "pgd", "--out", str(tmp_path / "s"), *FAST)
    assert code == 0, err
    (rec,) = ResultStore(tmp_path / "s").records()
    assert rec["checkpoint"] == "tmpplug.models:build" and len(rec["checkpoint_sha256"]) == 64
    for spec, needle in (("tmpplug.models:needs_argument", "must take no required argument"),
                         ("tmpplug.models:not_a_model", "expected a torch.nn.Module, got int"),
                         ("tmpplug.models:nothing", "has no 'nothing'")):
        code, _, err = cli(capsys, "attack", "--checkpoint", spec, "--defense", "none",
                           "--suite", "pgd", "--out", str(tmp_path / "t"), *FAST)
        assert code == 2 and needle in one_error_line(err)


def test_an_unknown_robustbench_model_names_close_entries_without_library_warnings(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "mi_bench.cli", "attack", "--checkpoint",
         "robustbench:Carmon2019Unlabel", "--suite", "pgd", "--out", str(tmp_path / "s")],
        check=False, capture_output=True, text=True, cwd=tmp_path, timeout=300,
        env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    line = one_error_line(proc.stderr)
    assert "closest: Carmon2019Unlabeled" in line and "mi-bench leaderboard" in line


def test_instance_options_are_refused():
    from mi_bench.defenses.plugins import from_python

    with pytest.raises(UserError, match="already configured"):
        from_python(get_defense("none"), {}, {"x": 1}, None)
    with pytest.raises(RandomnessMismatch):
        class Random:
            randomized = False

            def settings(self):
                return {}

            def passes_per_call(self, draws=None):
                return 1

            def wrap(self, model, seed, draws=None, max_batch=64):
                return lambda x: model(x) + torch.rand(1)

        check_randomness(from_python(Random, {}, {}, None), torch.nn.Identity(),
                         torch.zeros(2, 3), 0)
