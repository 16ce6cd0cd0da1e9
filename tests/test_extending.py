"""A contributor's three extensions, each one module: a defense, a suite, an ensemble member and
a report column registered in a temporary module, then run through ``attack``, ``sweep
--dry-run`` and ``report`` with no other file touched."""

from __future__ import annotations

import importlib
import json
import re
import sys
from pathlib import Path

import pytest
from test_sweep import cli

EXTENSION = '''
import torch
from torch import nn

from mi_bench.attacks.registry import register_member, register_suite
from mi_bench.attacks.suites import PGDSuite, Suite
from mi_bench.defenses import Defense, check_draws, register
from mi_bench.report.columns import ABSENT, BLANK, Acc, Column, register_column


class Jittered(nn.Module):
    randomized = True

    def __init__(self, model, draws, seed):
        super().__init__()
        self.model, self.draws = model, draws
        self.g = torch.Generator().manual_seed(seed)

    def forward(self, x):
        probs = 0
        for _ in range(self.draws):
            noise = (torch.rand(x.shape, generator=self.g) * 2 - 1).to(x.device) * 0.02
            probs = probs + self.model(x + noise).softmax(1)
        return (probs / self.draws).clamp_min(1e-12).log()


@register("jitter-test")
class Jitter(Defense):
    family = "transform"

    def __init__(self, name, card, options, data_dir=None):
        super().__init__(name)
        self.draws = int(options.get("draws", 2))
        check_draws(self.draws)

    def settings(self):
        return {"draws": self.draws}

    def eval_draws(self):
        return self.draws

    def passes_per_call(self, draws=None):
        return draws or self.draws

    def wrap(self, model, seed, draws=None, max_batch=64):
        return Jittered(model, draws or self.draws, seed)


class RandomSign(Suite):
    name = "random-sign"

    def __init__(self, eps):
        self.eps, self.warnings = eps, []

    def settings(self):
        return {"step": "eps * random sign"}

    def passes_per_image(self):
        return 0

    def perturb(self, x, y, seed):
        g = torch.Generator().manual_seed(seed)
        sign = torch.randint(0, 2, x.shape, generator=g).to(x.device) * 2 - 1
        return (x + self.eps * sign).clamp(0, 1)


@register_suite("random-sign", column="random sign", target="base", default_steps=1,
                legend="*random sign*: a random corner of the eps ball")
def random_sign(req):
    return RandomSign(req.cfg.eps)


@register_member("eot-pgd-dlr",
                 cost=lambda ens: ens.steps * ens.eot_iter * ens.calls_cost(ens.draws))
def eot_pgd_dlr(ens, x, y, seed):
    suite = PGDSuite("eot-pgd", ens.model_for(seed, ens.draws), ens.norm, ens.eps, ens.steps,
                     2.5 * ens.eps / ens.steps, "dlr", ens.restarts, ens.eot_iter,
                     num_classes=ens.num_classes)
    return suite.perturb(x, y, seed)


def worst_seed(item):
    row = getattr(item, "row", None)
    if row is None:
        return BLANK
    cell = row.cells.get("random-sign")
    return ABSENT if cell is None else Acc(float(cell.chosen.accs.min()))


register_column(Column("worst_seed", "worst seed (random sign)", worst_seed,
                       ("worst_seed_random_sign",), ("mean",), tables=("sweep",)))
'''

SPEC = """
[stores.main]
path = "store"

[defaults]
eval_repeats = 2
batch_size = 4
sanity = false

[[grid]]
name = "extended"
checkpoints = ["{ckpt}"]
defenses = ["jitter-test"]
suites = ["random-sign"]
eps = ["8/255"]
n = [4]
"""


@pytest.fixture()
def extension(tmp_path, monkeypatch):
    from mi_bench.attacks.registry import unregister
    from mi_bench.defenses.registry import unregister as unregister_defense
    from mi_bench.report.columns import unregister_column

    (tmp_path / "my_extension.py").write_text(EXTENSION)
    monkeypatch.syspath_prepend(str(tmp_path))
    module = importlib.import_module("my_extension")
    yield module
    unregister("random-sign")
    unregister("eot-pgd-dlr")
    unregister_defense("jitter-test")
    unregister_column("worst_seed")
    sys.modules.pop("my_extension", None)


def records(store: Path) -> list[dict]:
    return [json.loads(p.read_text()) for p in sorted((store / "records").glob("*.json"))]


def test_a_defense_suite_member_and_column_run_everywhere(extension, tiny_checkpoint, tmp_path,
                                                          monkeypatch, capsys):
    store = tmp_path / "store"
    common = ("--checkpoint", str(tiny_checkpoint), "--defense", "jitter-test", "--eps",
              "8/255", "--n-examples", "4", "--batch-size", "4", "--eval-repeats", "2",
              "--no-sanity", "--no-progress", "--out", str(store))
    code, out, err = cli(monkeypatch, capsys, "attack", "--suite", "random-sign", *common)
    assert code == 0, err
    assert "random-sign" in out  # the console summary, from the column list
    code, out, err = cli(monkeypatch, capsys, "attack", "--suite", "autoattack", "--aa-attacks",
                         "apgd-ce,eot-pgd-dlr", "--steps", "2", "--eot-iter", "1",
                         "--attack-draws", "1", *common)
    assert code == 0, err
    recs = {r["suite"]: r for r in records(store)}
    assert set(recs) == {"random-sign", "autoattack"}
    assert recs["random-sign"]["defense"] == "jitter-test"
    assert recs["autoattack"]["attack"]["attacks"] == ["apgd-ce", "eot-pgd-dlr"]
    assert set(recs["autoattack"]["ensemble"]) == {"apgd-ce", "eot-pgd-dlr"}
    # the member's declared cost is in the estimate: APGD 2 x 1 draw, EOT-PGD 2 x 1 draw; the
    # evaluation: clean image + 2 members' points, S 8 + R 2 draws of 2 passes
    assert recs["autoattack"]["estimated_passes"] == 4 * ((2 + 2) * 1 + 3 * (8 + 2) * 2)

    spec = tmp_path / "spec.toml"
    spec.write_text(SPEC.replace("{ckpt}", str(tiny_checkpoint)))
    code, out, err = cli(monkeypatch, capsys, "sweep", str(spec), "--dry-run")
    assert code == 0, err
    assert "jitter-test" in out and "random-sign" in out
    assert "1 jobs (1 done, 0 partial, 0 to run)" in out  # the CLI's record, found again

    rep = tmp_path / "report"
    code, out, err = cli(monkeypatch, capsys, "report", "--results", str(store), "--format",
                         "md,csv", "--out", str(rep), "--no-plots")
    assert code == 0, err
    sweep_md = (rep / "eps_sweep.md").read_text()
    header = next(line for line in sweep_md.splitlines() if line.startswith("| model"))
    assert re.search(r"\| random sign +\|", header)
    assert "worst seed (random sign)" in header
    assert "*random sign*: a random corner of the eps ball" in sweep_md
    assert "worst_seed_random_sign" in (rep / "eps_sweep.csv").read_text().splitlines()[0]
    assert "random sign" in (rep / "report.md").read_text()


def test_unknown_units_fail_in_one_line(monkeypatch, capsys, tiny_checkpoint, tmp_path):
    code, _, err = cli(monkeypatch, capsys, "attack", "--checkpoint", str(tiny_checkpoint),
                       "--suite", "autoattack", "--defense", "mi-ol", "--aa-attacks",
                       "apgd-ce,no-such-member", "--out", str(tmp_path / "s"))
    assert code == 2
    assert err.count("\n") == 1 and "no-such-member" in err


def test_the_readme_names_every_registered_suite_and_member():
    from mi_bench.attacks.registry import member_names, suite_names

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    for name in (*suite_names(), *member_names()):
        assert f"`{name}`" in readme or f"--suite {name}" in readme, name
