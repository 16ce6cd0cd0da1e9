"""AutoAttack for randomized defenses: the published rand credits points it never attacked; the
ensemble attacks every point right in at least one draw, on many draws, with every member."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.defenses import registry
from mi_bench.defenses.registry import Defense, register
from mi_bench.results import ResultStore


def flipped(pred: torch.Tensor, classes: int) -> torch.Tensor:
    """The class a flipped draw answers: the next one after the base model's (the label itself
    where the base model is wrong by one)."""
    return (pred + 1) % classes


class FlakyModule(nn.Module):
    """The base model, except that each draw, per image, answers ``flipped`` with prob p."""

    randomized = True

    def __init__(self, model, p, generator, draws):
        super().__init__()
        self.model, self.p, self.generator, self.draws = model, p, generator, draws

    def forward(self, x):
        probs = F.softmax(self.model(x), 1)
        total = 0
        for _ in range(self.draws):
            flip = torch.rand(x.shape[0], generator=self.generator) < self.p
            other = F.one_hot(flipped(probs.argmax(1), probs.shape[1]), probs.shape[1]).float()
            total = total + torch.where(flip[:, None], 0.9 * other + 0.1 * probs, probs)
        return (total / self.draws).clamp_min(1e-12).log()


@pytest.fixture()
def flaky():
    @register("test-flaky")
    class Flaky(Defense):
        def __init__(self, name, card, options, data_dir=None):
            super().__init__(name)

        def settings(self):
            return {"p": 0.5}

        def passes_per_call(self, draws=None):
            return 1

        def wrap(self, model, seed, draws=None, max_batch=64):
            return FlakyModule(model, 0.5, torch.Generator().manual_seed(seed), draws or 1)

    yield "test-flaky"
    registry._REGISTRY.pop("test-flaky")


def _run(tmp_path, ckpt, **kw):
    cfg = AttackConfig(checkpoint=str(ckpt), defense="test-flaky", suite="autoattack",
                       eps=16 / 255, eps_label="16/255", n_examples=16, batch_size=16,
                       eval_repeats=4, eot_iter=2, attack_draws=1, sanity=False, **kw)
    return AttackRun(cfg, ResultStore(tmp_path / "store"), progress=False, log=lambda m: None)


def test_published_rand_credits_unattacked_points_the_ensemble_attacks_them(tmp_path, flaky,
                                                                             tiny_checkpoint):
    rand_run = _run(tmp_path, tiny_checkpoint, aa_version="rand")
    rand = rand_run.run_seed(0)
    ens_run = _run(tmp_path, tiny_checkpoint, steps=10)
    assert ens_run.suite(ens_run.attack_model(0)).settings()["version"] == "ensemble"
    ens = ens_run.run_seed(0)
    store = ResultStore(tmp_path / "store")
    clean = store.load_examples(ens["key"])["clean"]
    assert np.array_equal(clean, store.load_examples(rand["key"])["clean"]), "same clean draws"
    # rand never attacked the points its one clean draw got wrong and returned them clean;
    # the R-draw evaluation then finds them right in some draws and credits them
    ex_rand = store.load_examples(rand["key"])
    credited = ex_rand["adv"].any(0)
    assert rand["robust_acc"] > 0 and credited.any()
    # a draw answers the base model's class or, flipped, the next one; rand's points are the
    # clean images wherever it did not attack: so at each credited image one of the two is the
    # label (the clean draws are an independent stream and may all flip wrong). Where the base
    # model is wrong, the flip can land on the label: a wrong image can be credited too.
    with torch.no_grad():
        logits = rand_run.base(rand_run.test.float_images())
    base, labels = logits.argmax(1), rand_run.test.labels
    reachable = ((base == labels) | (flipped(base, logits.shape[1]) == labels)).numpy()
    assert reachable[credited].all()
    # the ensemble attacks every such point; at 16/255 the tiny model breaks wherever attacked
    assert ens["robust_acc"] == 0.0
    ex = store.load_examples(ens["key"])
    members = ("apgd-ce", "apgd-dlr", "eot-pgd-ce", "eot-pgd-margin")
    assert set(ens["ensemble"]) == set(members)
    assert sum(m["wins"] for m in ens["ensemble"].values()) > 0
    # each example keeps the candidate (clean image or a member's point) lowest on selection
    # draws, and its score is that candidate's own scoring-draw score
    chosen, score = ex["chosen"], ex["adv"].mean(0)
    assert (ex["adv_select"].mean(0) <= ex["clean_select"].mean(0)).all()
    assert np.array_equal(ex["adv"][:, chosen == 0], ex["clean"][:, chosen == 0])
    for i, m in enumerate(members, 1):
        assert np.allclose(score[chosen == i], ex[f"member_{m}"][chosen == i])
    # a member's own score covers exactly the points it attacked: the first attacks every
    # point right in a clean selection draw, a later one only what is still unbroken
    attacked = [~np.isnan(ex[f"member_{m}"]) for m in members]
    assert np.array_equal(attacked[0], ex["clean_select"].any(0))
    assert all((later <= earlier).all() for earlier, later in itertools.pairwise(attacked))
    assert ens["ensemble"]["apgd-ce"]["attacked"] == int(attacked[0].sum())


def test_ensemble_cost_estimate_counts_many_draws_per_apgd_forward(tmp_path, flaky,
                                                                    tiny_checkpoint):
    suite = _run(tmp_path, tiny_checkpoint, steps=10).suite(None)
    # apgd-ce and apgd-dlr: 10 iterations, one forward of K x EOT = 2 draws (1 pass each here);
    # eot-pgd-ce and -margin: 10 steps x EOT 2 x 1 pass
    assert suite.passes_per_image() == 2 * 10 * 1 + 2 * 10 * 2 * 1
    assert suite.settings()["apgd_draws_per_forward"] == 2
