"""``mi_bench.benchmark``: one record with the CLI for one setting, the CLI's error messages, a
module and a Defense class or instance from Python, and the result's table."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import mi_bench
from mi_bench.cli import run
from mi_bench.errors import UserError
from mi_bench.results import ResultStore

FAST = {"n_examples": 4, "batch_size": 4, "eval_repeats": 2, "sanity": False, "steps": 2,
        "verbose": False}


def test_the_api_and_the_cli_give_one_record_for_one_setting(tmp_path, capsys, tiny_checkpoint):
    code = run(["attack", "--checkpoint", str(tiny_checkpoint), "--defense", "gaussian-noise",
                "--defense-opt", "draws=2", "--suite", "pgd", "--eps", "4/255,8/255",
                "--n-examples", "4", "--batch-size", "4", "--eval-repeats", "2", "--steps", "2",
                "--no-sanity", "--no-progress", "--out", str(tmp_path / "cli")])
    assert code == 0, capsys.readouterr().err
    cli = {r["key"]: r for r in ResultStore(tmp_path / "cli").records()}
    # eps as floats, options typed: the same setting, computed again in another store
    res = mi_bench.benchmark(str(tiny_checkpoint), eps=[4 / 255, 8 / 255], suites="pgd",
                             defense="gaussian-noise", defense_opts={"draws": 2},
                             store=tmp_path / "api", **FAST)
    assert sorted(res.keys["pgd"]) == sorted(cli) and len(cli) == 2
    for rec in res.records:
        assert rec["robust_acc"] == cli[rec["key"]]["robust_acc"]
        assert rec["clean_acc"] == cli[rec["key"]]["clean_acc"]


@pytest.mark.parametrize(("cli_args", "api_kwargs"), [
    (["--seeds", "0,0"], {"seeds": [0, 0]}),
    (["--eps", "2"], {"eps": 2.0}),
    (["--eps", "8/255/2"], {"eps": "8/255/2"}),
    (["--suite", "transfer"], {"suites": "transfer"}),
    (["--suite", "autoattack", "--aa-version", "custom"], {"suites": "autoattack",
                                                           "aa_version": "custom"}),
    (["--defense", "none", "--defense-opt", "sigma=1"], {"defense": "none",
                                                         "defense_opts": {"sigma": 1}}),
    (["--suite", "pgd", "--attack-preset", "tramer"], {"suites": "pgd",
                                                       "attack_preset": "tramer"}),
    (["--defense", "no-such"], {"defense": "no-such"}),
])
def test_the_api_refuses_what_the_cli_refuses_with_its_message(tmp_path, capsys, cli_args,
                                                               api_kwargs, tiny_checkpoint):
    code = run(["attack", "--checkpoint", str(tiny_checkpoint), "--out", str(tmp_path / "s"),
                *cli_args])
    err = capsys.readouterr().err.strip()
    assert code == 2 and err.startswith("error: ")
    with pytest.raises(UserError) as exc:
        mi_bench.benchmark(str(tiny_checkpoint), store=tmp_path / "s", verbose=False,
                           **api_kwargs)
    if "no-such" in cli_args:  # click's own choice message on the CLI; ours names the plug-ins
        assert "unknown defense 'no-such'" in str(exc.value)
    else:
        assert err == f"error: {exc.value}"
    assert not (tmp_path / "s" / "records").exists()


class RandomShift:
    """A user's defense in a script: a random shift of up to `pixels`, averaged over draws."""

    randomized = True

    def __init__(self, pixels: int = 2, draws: int = 2):
        self.pixels, self.draws = pixels, draws

    def settings(self):
        return {"pixels": self.pixels, "draws": self.draws}

    def passes_per_call(self, draws=None):
        return draws or self.draws

    def wrap(self, model, seed, draws=None, max_batch=64):
        gen, k, p = torch.Generator().manual_seed(seed), draws or self.draws, self.pixels

        def forward(x):
            out = 0
            for _ in range(k):
                dx, dy = torch.randint(-p, p + 1, (2,), generator=gen).tolist()
                out = out + torch.softmax(model(torch.roll(x, (dx, dy), (2, 3))), 1)
            return (out / k).log()

        return _Fn(forward)


class _Fn(nn.Module):
    def __init__(self, fn):
        super().__init__()
        self.fn = fn

    def forward(self, x):
        return self.fn(x)


def test_a_module_and_a_defense_class_from_python(tmp_path, tiny_model):
    flags = [p.requires_grad for p in tiny_model.parameters()]
    res = mi_bench.benchmark(tiny_model, model_name="tiny", defense=RandomShift,
                             defense_opts={"pixels": 1}, suites=["pgd", "eot-pgd"],
                             attack_draws=1, eot_iter=1, to_disk=False, store=tmp_path / "no",
                             **FAST)
    assert [p.requires_grad for p in tiny_model.parameters()] == flags  # restored
    assert not (tmp_path / "no").exists()  # to_disk=False: a temporary store
    (row,) = res.frame.to_dict("records")
    assert row["model"] == "tiny" and row["defense"] == "RandomShift (pixels=1, draws=2)"
    for col in ("clean", "pgd", "eot-pgd", "worst"):
        assert row[f"{col}_low"] <= row[col] <= row[f"{col}_high"]
    assert row["worst"] <= min(row["pgd"], row["eot-pgd"]) + 1e-9
    assert row["forwards"] > 0 and row["backwards"] > 0 and len(row["keys"]) == 2
    clean, robust = res
    assert clean == row["clean"] and robust == row["worst"] and res.robust_acc == robust
    ident = res.records[0]["defense"]
    assert ident.endswith("test_api.py:RandomShift") or ident == "test_api:RandomShift"
    assert "RandomShift (pixels=1, draws=2)" in res.to_markdown()


def test_a_configured_instance_whose_randomness_is_idle_is_refused(tmp_path, tiny_model):
    from mi_bench.defenses.randomness import RandomnessMismatch

    with pytest.raises(RandomnessMismatch, match="says randomized = True, but 4 forwards"):
        mi_bench.benchmark(tiny_model, defense=RandomShift(pixels=0, draws=1), suites="pgd",
                           store=tmp_path / "s", **FAST)
    res = mi_bench.benchmark(tiny_model, defense=RandomShift(pixels=1, draws=1), suites="pgd",
                             store=tmp_path / "s", **FAST)
    assert res.records[0]["defense_settings"] == {"pixels": 1, "draws": 1}
    assert res.store == tmp_path / "s" and len(ResultStore(res.store).records()) == 1


def test_bad_model_and_dataset(tmp_path, tiny_checkpoint):
    with pytest.raises(UserError, match="unknown dataset 'svhn'"):
        mi_bench.benchmark(str(tiny_checkpoint), dataset="svhn", verbose=False)
    with pytest.raises(UserError, match="not cifar100"):
        mi_bench.benchmark(str(tiny_checkpoint), dataset="cifar100", verbose=False)
    with pytest.raises(UserError, match="model must be an nn.Module or a checkpoint"):
        mi_bench.benchmark(42, verbose=False)
    with pytest.raises(UserError, match="unknown setting"):
        mi_bench.benchmark(str(tiny_checkpoint), stpes=3, verbose=False)
