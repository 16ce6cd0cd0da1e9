"""Cells of a row: one suite's records, grouped into attack variants (settings) with a record
per seed, and the strongest variant's per-example scores; ``example_scores`` is the one place
that reads an example's scores and its worst case over seeds and draws.

Which variant is strongest is a choice, so it reads selection draws (``robust_select_acc``);
every number shown reads scoring draws (``attacks/draws.py``)."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field

import numpy as np

from mi_bench.errors import UserError
from mi_bench.intervals import interval
from mi_bench.report.columns import suite_column
from mi_bench.results import ResultStore

SHORT = {"attack.eot_iter": "EOT", "attack_draws": "K", "attack.steps": "steps",
         "attack.restarts": "restarts", "attack.step_size": "step", "attack.loss": "loss",
         "attack.version": "AutoAttack", "attack.attacks": "attacks", "attack.variant": "variant",
         "attack.targeted": "targeted", "eval_repeats": "draws", "surrogate_sha256": "surrogate sha256",
         "attack.n_iter": "iterations"}
HIDDEN = ("surrogate_sha256",)  # differs whenever the surrogate does; the name says enough


@dataclass
class Variant:
    """One attack setting of one suite on one row: a record per seed."""

    records: list[dict]
    ident: dict[str, str]

    @property
    def accs(self) -> np.ndarray:
        return np.array([r["robust_acc"] for r in self.records], dtype=float)

    @property
    def mean(self) -> float:
        return float(self.accs.mean())

    @property
    def select_mean(self) -> float:
        """The mean on selection draws: what ranks variants (deterministic: the mean)."""
        return float(np.mean([r.get("robust_select_acc", r["robust_acc"])
                              for r in self.records]))


@dataclass
class Cell:
    """The number shown for one suite of one row: the strongest variant, with what it beat."""

    suite: str
    chosen: Variant
    others: list[Variant]
    worst: float
    problems: list[str]
    scores: dict | None = None  # per example: robust, clean (share right), worst (bool)
    # every run (each seed of each variant) with arrays, the chosen variant's first: per
    # example its selection-draw mean and its scoring draws ({"select", "draws"}); the worst
    # over attacks picks among them (``Row.worst_scores``)
    all_robust: list = field(default_factory=list)

    @property
    def records(self) -> list[dict]:
        return self.chosen.records

    @property
    def ci(self) -> tuple[float, float]:
        """95% interval over images of the robust accuracy."""
        return interval(self.scores["robust"]) if self.scores else (math.nan, math.nan)

    @property
    def clean_ci(self) -> tuple[float, float]:
        return interval(self.scores["clean"]) if self.scores else (math.nan, math.nan)

    @property
    def mean(self) -> float:
        return self.chosen.mean

    @property
    def std(self) -> float:
        accs = self.chosen.accs
        return float(accs.std(ddof=1)) if len(accs) > 1 else math.nan

    @property
    def clean_mean(self) -> float:
        return float(np.mean([r["clean_acc"] for r in self.records]))

    @property
    def clean_std(self) -> float:
        c = np.array([r["clean_acc"] for r in self.records], dtype=float)
        return float(c.std(ddof=1)) if len(c) > 1 else math.nan

    @property
    def seeds(self) -> list[int]:
        return [r["seed"] for r in self.records]

    @property
    def n(self) -> int:
        return int(self.records[0]["n"])

    @property
    def attacks(self) -> set[str]:
        """Every attack this cell's records ran (AutoAttack's members; else the suite)."""
        return {a for v in (self.chosen, *self.others) for r in v.records
                for a in record_attacks(r)}

    def choice_note(self) -> str:
        """Which setting won when several were run ('' when only one was)."""
        if not self.others:
            return ""
        variants = [self.chosen, *self.others]
        keys = sorted({k for v in variants for k in v.ident
                       if k not in HIDDEN and any(w.ident.get(k) != v.ident.get(k)
                                                  for w in variants)})

        def desc(v: Variant) -> str:
            return ", ".join(f"{SHORT.get(k, k)} {_plain(v.ident.get(k))}" for k in keys)

        others = "; ".join(f"{desc(v)}: {100 * v.mean:.2f}" for v in self.others)
        return (f"{suite_column(self.suite)}: strongest of {len(variants)} settings "
                f"({desc(self.chosen)}); others: {others}")


def _plain(text: str | None) -> str:
    if text is None:
        return "unset"
    value = json.loads(text)
    if isinstance(value, list):
        return "+".join(map(str, value))
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def record_attacks(record: dict) -> list[str]:
    """The attacks a record ran: AutoAttack's members, else its suite."""
    return (record.get("attack") or {}).get("attacks") or [record["suite"]]


def example_scores(store: ResultStore, records: list[dict]) -> tuple[dict | None, list[str]]:
    """Per example, over every seed's scoring draws: the robust and clean scores (share right)
    and the worst case (right in all); ``clean_select``: the clean image's selection-draw
    score; ``clean_draws``: the first seed's clean scoring draws (a run that kept the clean
    image carries its own seed's at the same indices, so no draw lands in one half of the
    held-out split for one candidate and in the other half for another); ``runs``: each
    record's (seed's) per-example selection-draw mean, its scoring draws (``draws``) and the
    attacks it ran. None, with
    a problem, if the arrays are missing or misfit."""
    robust, clean, clean_sel, runs, worst = [], [], [], [], None
    for r in records:
        try:
            ex = store.load_examples(r["key"])
            adv, cl = np.asarray(ex["adv"], bool), np.asarray(ex["clean"], bool)
            adv_sel = np.asarray(ex["adv_select"], bool)
            cl_sel = np.asarray(ex["clean_select"], bool)
        except (OSError, KeyError, ValueError, UserError) as exc:
            return None, [f"record {r['key']}: no per-example arrays ({exc})"]
        if worst is not None and adv.shape[1] != worst.shape[0]:
            msg = (f"record {r['key']}: per-example arrays of shape {adv.shape} do not match "
                   f"{worst.shape}")
            return None, [msg]
        robust.append(adv)
        clean.append(cl)
        clean_sel.append(cl_sel)
        runs.append({"select": adv_sel.mean(0), "draws": adv,
                     "attacks": frozenset(record_attacks(r))})
        worst = adv.all(0) if worst is None else worst & adv.all(0)
    return {"robust": np.concatenate(robust).mean(0), "clean": np.concatenate(clean).mean(0),
            "clean_select": np.concatenate(clean_sel).mean(0), "worst": worst,
            "clean_draws": clean[0], "runs": runs}, []


def make_cell(store: ResultStore, suite: str, variants: list[Variant]) -> Cell:
    """Strongest = lowest mean on selection draws; ties go to more seeds, then more examples."""
    ranked = sorted(variants, key=lambda v: (v.select_mean, -len(v.records),
                                             -int(v.records[0]["n"]),
                                             json.dumps(v.ident, sort_keys=True)))
    scores, problems = example_scores(store, ranked[0].records)
    worst = float(scores["worst"].mean()) if scores else math.nan
    # every seed of every variant is an attack run of its own: a restart, for the worst
    all_robust = list(scores["runs"]) if scores else []
    for other in ranked[1:]:
        more, trouble = example_scores(store, other.records)
        problems += trouble
        if more is not None and scores is not None and more["robust"].shape == scores[
                "robust"].shape:
            all_robust += more["runs"]
    return Cell(suite, ranked[0], ranked[1:], worst, problems, scores, all_robust)
