"""``--suite binarization``: the binarization test of an inner suite on every test image.

Per sample: the binary task and readout (:mod:`mi_bench.attacks.binarization`), the defense
rebuilt around the binarized classifier, its validation on fresh points, the inner suite with
its own settings (the runner builds it, so ``--suite X`` and ``--suite binarization
--inner-attack X`` attack alike), and success judged on held-out evaluation draws that no choice
of the attack saw. Each sample is stored as it finishes, so a killed run resumes.
"""

from __future__ import annotations

import copy
import dataclasses
import time

import numpy as np
import torch
from torch import nn

from mi_bench.attacks.binarization import (
    BinarizationSettings,
    BinaryTask,
    build_setup,
    settings_from,
    verdict,
)
from mi_bench.attacks.checks import check_valid
from mi_bench.attacks.registry import SuiteRequest, get_suite, inner_suites, register_suite
from mi_bench.attacks.runner import BatchJudge, evaluate_draws
from mi_bench.attacks.suites import DecisionView, PassCounter
from mi_bench.defenses.registry import Defense
from mi_bench.device import describe
from mi_bench.errors import UserError
from mi_bench.evaluate import correct_matrix
from mi_bench.results import package_versions, record_key

ROLES = ("task", "attack_defense", "attack", "decisions", "eval_val", "eval_adv")


def sample_seeds(seed: int, index: int) -> dict[str, int]:
    """Independent streams per (seed, sample, role): resuming at a sample changes nothing."""
    seqs = np.random.SeedSequence([seed, 19, index]).spawn(len(ROLES))
    return {r: int(q.generate_state(1)[0]) for r, q in zip(ROLES, seqs)}


class BinarizedDefense(Defense):
    """A configured defense as it acts on one binary task: ``wrap`` builds its binarized form,
    so the runner's suites attack it exactly as they attack the defense itself."""

    def __init__(self, inner: Defense, task: BinaryTask):
        super().__init__(inner.name)
        self.inner, self.task = inner, task
        self.randomized = inner.randomized

    def settings(self) -> dict:
        return self.inner.settings()

    def eval_draws(self) -> int:
        return self.inner.eval_draws()

    def passes_per_call(self, draws: int | None = None) -> int:
        return self.inner.passes_per_call(draws)

    def wrap(self, model: nn.Module, seed: int, draws: int | None = None,
             max_batch: int = 64) -> nn.Module:
        return self.inner.binarized(model, self.task, seed, draws, max_batch)


def inner_view(run, defense: Defense | None = None, base: nn.Module | None = None):
    """The run as if it were ``--suite <inner attack>``, optionally on a binarized defense and
    classifier: a shallow copy whose ``suite()`` and ``attack_model()`` are the runner's own."""
    view = copy.copy(run)
    view.cfg = dataclasses.replace(run.cfg, suite=run.cfg.inner_attack)
    view.entry = get_suite(run.cfg.inner_attack)
    if defense is not None:
        view.defense, view.base, view.counters = defense, base, [base]
        view.card = {**run.card, "num_classes": 2}  # the real classes; padding is never a target
    return view


def identity(run, seed: int, s: BinarizationSettings) -> dict:
    ident = inner_view(run).identity(seed)
    ident.update(suite="binarization", inner_suite=run.cfg.inner_attack,
                 binarization=dataclasses.asdict(s))
    return ident


def attack_sample(run, seed: int, index: int, s: BinarizationSettings) -> dict:
    """One sample of the test: setup, validation, the inner attack, the held-out judgement."""
    c = run.cfg
    sd = sample_seeds(seed, index)
    t0 = time.time()
    x = run.test.float_images(index, index + 1).to(run.device)
    num_classes = max(3, int(run.card.get("num_classes", 10)))
    setup = build_setup(run.base.model, run.defense, x, c.eps, c.norm, s,
                        torch.Generator().manual_seed(sd["task"]), num_classes, c.max_batch)
    out = {"valid": np.bool_(False), "passed": np.bool_(False), "failure": np.str_(""),
           "train_acc": np.float64(setup.train_acc), "scale": np.float64(setup.scale),
           "val_inner": np.float64(np.nan), "val_boundary": np.float64(np.nan),
           "fooled": np.float64(np.nan), "forwards": np.int64(setup.forwards),
           "backwards": np.int64(0)}
    if setup.failure is None:
        binary = PassCounter(setup.model)
        view = inner_view(run, BinarizedDefense(run.defense, setup.task), binary)
        _attack(view, setup.task, x, sd, s, out)
        out["forwards"] += binary.forwards
        out["backwards"] = np.int64(binary.backwards)
    else:
        out["failure"] = np.str_(setup.failure)
    out["seconds"] = np.float64(time.time() - t0)
    return out


def _attack(view, task: BinaryTask, x: torch.Tensor, sd: dict, s: BinarizationSettings,
            out: dict) -> None:
    c = view.cfg
    r = c.eval_repeats
    val = correct_matrix(view.eval_model(sd["eval_val"]), task.val_images, task.val_labels,
                         r).numpy()
    out["val_inner"] = np.float64(val[:, :s.n_val].mean())
    out["val_boundary"] = np.float64(val[:, s.n_val:].mean())
    y = torch.zeros(1, dtype=torch.long, device=x.device)
    identity = f"binarization:{sd['decisions']}"  # the sample's own streams (draws.py)
    clean = evaluate_draws(view, x, y, identity, 0, 0)
    if clean.select.mean() <= 0.5:  # a choice (set the sample aside): selection draws
        out["failure"] = np.str_("the binarized defense predicts the boundary class at x")
        return
    out["valid"] = np.bool_(True)
    model = view.attack_model(sd["attack_defense"])
    if view.stochastic_attack:
        model = DecisionView(model, view.eval_model(sd["decisions"]))
    # the suite's own choices (the ensemble's) read its judge's selection draws
    x_adv = view.suite(model).attack(x, y, sd["attack"],
                                     BatchJudge(view, x, y, clean, identity, 0)).x_adv
    check_valid(x_adv, x, c.eps, c.norm)
    # held out: these draws decided nothing (every choice read selection draws)
    adv = correct_matrix(view.eval_model(sd["eval_adv"]), x_adv, y, r).numpy()
    out["fooled"] = np.float64(1.0 - adv.mean())
    out["passed"] = np.bool_(out["fooled"] > 0.5)


def run_binarization_seed(run, seed: int) -> dict:
    """The test over the run's first n test images under ``seed``; one record."""
    c = run.cfg
    s = settings_from(c.binarization)
    ident = identity(run, seed, s)
    key = record_key(ident)
    if run.store.has(key):
        run.log(f"seed {seed}: record {key} exists, skipped")
        return run.store.load(key)
    done = run.store.done_batches(key)
    run.log(f"seed {seed}: binarization test of {c.inner_attack} on {ident['checkpoint']} + "
            f"{c.defense}, eps {c.eps_label} {c.norm}, n {c.n_examples}, {s.n_inner} inner + "
            f"{s.n_boundary} {s.boundary} points, record {key}"
            + (f"; resuming after {len(done)} samples" if done else ""))
    for i in range(c.n_examples):
        if i not in done:
            done[i] = attack_sample(run, seed, i, s)
            run.store.save_batch(key, i, done[i])
            d = done[i]
            status = ("pass" if d["passed"] else "FAIL") if d["valid"] else f"set aside: " \
                f"{d['failure']}"
            run.log(f"  sample {i}: {status} (val {float(d['val_inner']):.2f}/"
                    f"{float(d['val_boundary']):.2f}, {float(d['seconds']):.1f} s)")
    record, examples = make_record(run, ident, key, s, [done[i] for i in range(c.n_examples)])
    run.store.write(key, record, examples)
    return record


def make_record(run, ident: dict, key: str, s: BinarizationSettings, rows: list[dict]
                ) -> tuple[dict, dict]:
    """The record (verdict, failures with reasons, validation, cost) and its per-sample arrays."""
    cols = {k: np.array([r[k] for r in rows]) for k in rows[0]}
    valid, passed = cols["valid"].astype(bool), cols["passed"].astype(bool)
    v = verdict(int(passed[valid].sum()), int(valid.sum()), s.threshold, s.alpha)
    n = len(rows)
    passes = int(cols["forwards"].sum() + cols["backwards"].sum())
    record = {
        "key": key, **ident, "eps_label": run.cfg.eps_label, "data_path": run.test.source,
        "binarization_test": v,
        "setup_failures": [{"sample": i, "reason": str(r["failure"])} for i, r in
                           enumerate(rows) if not r["valid"]],
        "val_acc_inner": _mean(cols["val_inner"][valid]),
        "val_acc_boundary": _mean(cols["val_boundary"][valid]),
        "forwards": int(cols["forwards"].sum()), "backwards": int(cols["backwards"].sum()),
        "seconds": float(cols["seconds"].sum()), "passes_per_sample": passes / n,
        "seconds_per_sample": float(cols["seconds"].sum()) / n,
        "verdict_source": "Zimmermann et al. 2022 read an ASR well below 1 as a failed test "
                          "(their reference code reports the ASR with no threshold); this "
                          f"harness's rule: below ASR {s.threshold} fails, with a one-sided "
                          f"binomial test of the failure count at alpha {s.alpha}",
        "model_card": {k: run.card.get(k) for k in ("arch", "method", "seed", "clean_acc",
                                                     "dataset")},
        "defense_label": run.defense.label(), "defense_randomized": run.defense.randomized,
        "versions": package_versions(), "device": describe(run.device),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    examples = {k: cols[k] for k in ("valid", "passed", "fooled", "val_inner", "val_boundary",
                                     "train_acc", "scale", "forwards", "backwards", "seconds")}
    return record, examples


def _mean(a: np.ndarray) -> float | None:
    return float(np.mean(a)) if len(a) else None


def summary_row(record: dict) -> dict:
    """One table row: ASR with its 95% interval, the verdict and the cost per sample."""
    v = record["binarization_test"]
    asr = "-" if v["asr"] is None else (f"{v['asr']:.1%} [{v['interval'][0]:.1%}, "
                                        f"{v['interval'][1]:.1%}]")
    val = "-" if record["val_acc_inner"] is None else (f"{record['val_acc_inner']:.2f}/"
                                                       f"{record['val_acc_boundary']:.2f}")
    return {"model": record.get("checkpoint"), "defense": record.get("defense"),
            "inner attack": record.get("inner_suite"),
            "eps": f"{record.get('eps_label')} {record.get('norm')}",
            "valid / n": f"{v['n_valid']} / {record['n']}",
            "setup failures": len(record["setup_failures"]), "ASR (95% CI)": asr,
            "verdict": v["verdict"] + (" (significant)" if v["significant"] else ""),
            "val acc inner/boundary": val,
            "passes/sample": f"{record['passes_per_sample']:,.0f}",
            "s/sample": f"{record['seconds_per_sample']:.1f}"}


def _check(cfg) -> None:
    """``--suite binarization``'s own settings, checked with the rest of the config."""
    if cfg.inner_attack not in inner_suites():
        raise UserError(f"--suite binarization needs --inner-attack, one of "
                        f"{tuple(inner_suites())}; got {cfg.inner_attack!r}")
    settings_from(cfg.binarization)


def _table(records: list[dict]) -> str:
    import pandas as pd

    return pd.DataFrame([summary_row(r) for r in records]).to_markdown(index=False)


@register_suite("binarization", column="binarization", target="defense", default_steps=100,
                run_seed=run_binarization_seed, summary=_table, check=_check,
                help="the binarization test (Zimmermann et al. 2022) of --inner-attack "
                     "against this defense")
def binarization(req: SuiteRequest):
    """The inner attack's suite (what each sample's binarized defense faces)."""
    inner = get_suite(req.cfg.inner_attack)
    cfg = dataclasses.replace(req.cfg, suite=inner.name)
    return inner.build(dataclasses.replace(req, cfg=cfg, steps=cfg.steps or inner.default_steps))
