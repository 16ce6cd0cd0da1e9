"""Choose on selection draws, report on scoring draws (``attacks/draws.py``).

A synthetic randomized classifier whose probability of being right on each image is known
exactly, and that no attack can move: the minimum over many runs on the draws that chose it
lands well below the truth; the harness's numbers land within their intervals of it.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

from mi_bench.attacks import runner as runner_module
from mi_bench.attacks.draws import Draws, held_out_worst, keep_worst, stream, worst_scores
from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.data import load_sample
from mi_bench.defenses import registry
from mi_bench.defenses.registry import Defense, register
from mi_bench.intervals import interval
from mi_bench.report.rows import collect_rows, read_records
from mi_bench.results import ResultStore

N_IMAGES = 60
TEST = load_sample("test").head(N_IMAGES)
# the known truth: image i is classified right with probability P[i] in every draw
P = np.linspace(0.2, 0.8, N_IMAGES)[np.random.default_rng(0).permutation(N_IMAGES)]


class KnownP(nn.Module):
    """Finds the stored image nearest to its input (an attack within eps cannot change which)
    and answers its label with probability P[i], another class otherwise: fresh per call."""

    randomized = True

    def __init__(self, generator: torch.Generator):
        super().__init__()
        self.images = TEST.float_images().flatten(1)
        self.labels = TEST.labels
        self.p = torch.as_tensor(P, dtype=torch.float32)
        self.generator = generator

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        i = torch.cdist(x.detach().flatten(1).float(), self.images).argmin(1)
        right = torch.rand(len(i), generator=self.generator) < self.p[i]
        label = torch.where(right, self.labels[i], (self.labels[i] + 1) % 10)
        probs = 0.9 * F.one_hot(label, 10).float() + 0.01
        return probs + 0 * x.flatten(1)[:, :1]  # a gradient path, so attacks run


@pytest.fixture()
def known_p():
    @register("test-known-p")
    class Known(Defense):
        randomized = True
        family = "other"

        def __init__(self, name, card, options, data_dir=None):
            super().__init__(name)

        def settings(self):
            return {"p": "linspace(0.2, 0.8)"}

        def passes_per_call(self, draws=None):
            return 1

        def wrap(self, model, seed, draws=None, max_batch=64):
            return KnownP(torch.Generator().manual_seed(int(seed) % 2**63))

    yield "test-known-p"
    registry._REGISTRY.pop("test-known-p")


def _run(tmp_path, ckpt, suite="pgd", seeds=(0,), **kw) -> list[dict]:
    # R = 10 scoring draws: the draws change with the freshly trained checkpoint's key, and the
    # held-out worst over ten runs of 60 images spreads 2.2 points at R = 10 (3.0 at R = 5;
    # 400 simulated rows), so its 7-point tolerance below sits three standard deviations out
    cfg = AttackConfig(checkpoint=str(ckpt), defense=kw.pop("defense", "test-known-p"),
                       suite=suite, eps=1 / 255, eps_label="1/255", n_examples=N_IMAGES,
                       batch_size=30, eval_repeats=10, select_repeats=8, steps=1,
                       seeds=list(seeds), sanity=False, **kw)
    run = AttackRun(cfg, ResultStore(tmp_path / "store"), progress=False, log=lambda m: None)
    return [run.run_seed(s) for s in cfg.seeds]


def test_minimum_on_the_choosing_draws_is_biased_low_the_harness_is_not(tmp_path, known_p,
                                                                         tiny_checkpoint):
    truth = float(P.mean())  # no point can move: the robust accuracy is the clean one
    recs = _run(tmp_path, tiny_checkpoint, seeds=range(10))
    store, records = read_records(tmp_path / "store")
    ex = [store.load_examples(r["key"]) for r in recs]
    # the old way: per image the lowest mean over runs, read on the draws that chose it
    naive = np.min(np.stack([e["adv_select"].mean(0) for e in ex]), axis=0).mean()
    assert naive < truth - 0.15, (naive, truth)
    (row,) = collect_rows(store, records)
    cell = row.cells["pgd"]
    lo, hi = cell.ci
    assert lo <= truth <= hi and lo <= cell.mean <= hi, (cell.mean, cell.ci, truth)
    worst, (wlo, whi) = row.worst_over_attacks
    assert wlo <= truth <= whi, (worst, (wlo, whi), truth)
    assert abs(worst - truth) < 0.07 and naive < wlo  # the naive minimum is outside it
    for r in recs:  # and each record's own number
        assert abs(r["robust_acc"] - truth) < 0.08, (r["robust_acc"], truth)


def test_no_choice_reads_the_scoring_draws(tmp_path, known_p, tiny_checkpoint, monkeypatch):
    kw = {"suite": "autoattack", "aa_version": "ensemble", "eot_iter": 1, "attack_draws": 1,
          "aa_attacks": ["apgd-ce", "eot-pgd-margin"]}
    (a,) = _run(tmp_path / "a", tiny_checkpoint, **kw)
    original = stream

    def shifted(identity, batch, role, candidate=0):  # other scoring draws, same selection
        return original(identity + ("!" if role == "score" else ""), batch, role, candidate)

    monkeypatch.setattr(runner_module, "stream", shifted)
    (b,) = _run(tmp_path / "b", tiny_checkpoint, **kw)
    ea = ResultStore(tmp_path / "a" / "store").load_examples(a["key"])
    eb = ResultStore(tmp_path / "b" / "store").load_examples(b["key"])
    assert a["key"] == b["key"]
    assert not np.array_equal(ea["adv"], eb["adv"]), "the scoring draws did change"
    # every choice is the same: the kept candidate, which points each member attacked
    for k in ("chosen", "adv_select", "clean_select", "member_apgd-ce", "member_eot-pgd-margin"):
        if k.startswith("member_"):
            assert np.array_equal(np.isnan(ea[k]), np.isnan(eb[k])), k
        else:
            assert np.array_equal(ea[k], eb[k]), k
    assert a["ensemble"]["apgd-ce"]["wins"] == b["ensemble"]["apgd-ce"]["wins"]


def _tolerance(p: float, m: int) -> float:
    """Five standard errors of an agreement rate over m draws (the draws depend on the record's
    key, which names the freshly trained checkpoint, so a fixed tolerance would be flaky);
    shared draws (agreement 1) stay far outside it."""
    return 5 * float(np.sqrt(p * (1 - p) / m))


def test_scoring_draws_of_two_records_of_one_seed_are_independent(tmp_path, known_p,
                                                                  tiny_checkpoint):
    (pgd,) = _run(tmp_path, tiny_checkpoint, suite="pgd")
    (eot,) = _run(tmp_path, tiny_checkpoint, suite="eot-pgd", eot_iter=1, attack_draws=1)
    store = ResultStore(tmp_path / "store")
    a, b = (store.load_examples(r["key"]) for r in (pgd, eot))
    # where each record kept its own point (not the clean image, a candidate both share), the
    # same images with the same P: independent draws agree with probability p^2 + (1-p)^2,
    # shared draws always
    own = (a["chosen"] == 1) & (b["chosen"] == 1)
    assert own.sum() >= 10
    expect = float(np.mean(P[own] ** 2 + (1 - P[own]) ** 2))
    for x, y in ((a["adv"], b["adv"]), (a["adv"], a["clean"])):
        agree = float((x[:, own] == y[:, own]).mean())
        assert abs(agree - expect) < _tolerance(expect, x[:, own].size), (agree, expect)
    # the clean image's selection and scoring draws: independent too
    agree = float((a["clean_select"] == a["clean"][:8]).mean())
    expect = float(np.mean(P ** 2 + (1 - P) ** 2))
    assert abs(agree - expect) < _tolerance(expect, a["clean_select"].size), (agree, expect)
    assert np.array_equal(a["clean"], b["clean"]), "the clean image's draws are shared"


def test_keep_worst_chooses_on_selection_draws_only():
    x = Draws([[1, 1, 0]], [[1, 0, 0]])
    point = Draws([[0, 1, 1]], [[1, 1, 1]])
    best, which = keep_worst([x, point])
    # lower on selection; a tie with the clean image goes to the point
    assert which.tolist() == [1, 1, 0]
    assert best.score.tolist() == [[1, 1, 0]]
    # the candidate lowest on selection (row 0 the clean image), read on its scoring draws
    assert worst_scores([[0.5, 0.2, 0.0], [0.1, 0.9, 0.0], [0.1, 0.9, 0.0]],
                        [[1.0, 0.3, 0.4], [0.6, 0.0, 0.1], [0.7, 0.0, 0.2]]).tolist() == [0.6, 0.3, 0.1]
    # ties between runs go to the run lowest on selection draws over all images (run 2 here)
    assert worst_scores([[1.0, 1.0, 1.0], [0.0, 0.5, 0.25], [0.0, 0.0, 0.5]],
                        [[1.0, 1.0, 1.0], [0.4, 0.4, 0.4], [0.1, 0.1, 0.1]]).tolist() == [0.1, 0.1, 0.4]
    assert stream("k", 0, "score") != stream("k", 0, "select") != stream("k", 1, "select")


def test_held_out_worst_is_unbiased_and_not_fooled_by_a_record_that_chose_on_its_draws():
    """Records whose selection draws were spent on their own choices (an ensemble kept the
    member lowest on them) read low there; a choice between records on those draws prefers
    them. The cross-fitted choice on scoring draws does not, and reads no draw it chose on."""
    rng = np.random.default_rng(0)
    n, r, s = 2000, 5, 8

    def draws(p: float, k: int) -> np.ndarray:
        return rng.random((k, n)) < p

    clean = draws(0.9, r)
    # ten runs of one true accuracy 0.3: the minimum on the choosing draws is far below it
    runs = [draws(0.3, r) for _ in range(10)]
    naive = np.min(np.stack([d.mean(0) for d in runs]), axis=0).mean()
    held = held_out_worst([clean, *runs])
    lo, hi = interval(held)
    assert naive < 0.15 and lo <= 0.3 <= hi, (naive, held.mean(), (lo, hi))
    # A is right with probability 0.3, B with 0.4, but B's selection draws are those of the
    # lowest of four members (its own choice): they read about 0.23, under A's
    a_sel, a_score = draws(0.3, s), draws(0.3, r)
    members = np.stack([draws(0.4, s) for _ in range(4)])
    b_sel = members[np.argmin(members.mean(1), 0), :, np.arange(n)].T
    b_score = draws(0.4, r)
    assert b_sel.mean() < a_sel.mean() - 0.05
    on_selection = worst_scores(np.stack([draws(0.9, s).mean(0), a_sel.mean(0), b_sel.mean(0)]),
                                np.stack([clean.mean(0), a_score.mean(0), b_score.mean(0)]))
    held = held_out_worst([clean, a_score, b_score])
    assert on_selection.mean() > a_score.mean() + 0.05  # weaker than its best column
    assert held.mean() < on_selection.mean() - 0.03, (held.mean(), on_selection.mean())
    assert held.mean() < a_score.mean() + 0.04  # only the noise of a 4-draw choice above A
    # each reading is of a draw its choice did not see: A is wrong in draw 0, B in draw 1; the
    # choice for draw 0 reads draw 1 (keeps B, right in draw 0) and the other way round, where
    # a choice on the read draw itself would give 0
    assert held_out_worst([[[1], [1]], [[0], [1]], [[1], [0]]]).tolist() == [1.0]
    # halves {0, 2} and {1}: chosen on {0, 2} (A, 0.5 < 1), read on {1}: 1 (one draw); chosen
    # on {1} (A's 1 ties the clean image, and a tie goes to the point), read on {0, 2}: 0.5
    # (two draws); (1 + 2 * 0.5) / 3
    assert held_out_worst([[[1], [1], [1]], [[0], [1], [1]]]).tolist() == [2 / 3]
    with pytest.raises(ValueError, match="two scoring draws"):
        held_out_worst([clean[:1], a_score[:1]])
