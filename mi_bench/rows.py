"""Rows of results: records grouped into (checkpoint, defense, norm, eps) rows with one cell per
suite, each cell the strongest attack setting with per-example scores and 95% intervals.

Rules: a row never mixes image sets (every column on the same images); among records that differ
only in attack settings (steps, EOT, K, surrogate, ...) the strongest (lowest mean accuracy) is
the cell and the notes say what it beat; records of an older protocol are left out.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mi_bench.errors import UserError
from mi_bench.intervals import interval
from mi_bench.results import PROTOCOL, ResultStore

MISSING = "—"
SUITES = ("pgd", "autoattack", "eot-pgd", "transfer")
SUITE_COLUMN = {"pgd": "oblivious", "autoattack": "adaptive", "eot-pgd": "EOT-PGD",
                "transfer": "transfer"}
WORST_COLUMN = "worst over attacks"
CSV_PREFIX = {"pgd": "oblivious", "autoattack": "adaptive", "eot-pgd": "eot_pgd",
              "transfer": "transfer"}
HEADLINE_EPS = {"Linf": 8 / 255, "L2": 0.5}
EPS_TOL = 1e-6

# What makes a row, what makes an attack setting within a row's suite, and the seed on top.
ROW_FIELDS = ("checkpoint", "checkpoint_sha256", "defense", "defense_settings", "norm", "eps")
VARIANT_FIELDS = ("attack", "attack_draws", "n", "eval_repeats", "data", "surrogate",
                  "surrogate_sha256")
IDENTITY_FIELDS = (*ROW_FIELDS, "suite", *VARIANT_FIELDS, "seed")
REQUIRED = ("key", "checkpoint", "defense", "suite", "norm", "eps", "seed", "n", "clean_acc",
            "robust_acc")
SHORT = {"attack.eot_iter": "EOT", "attack_draws": "K", "attack.steps": "steps",
         "attack.restarts": "restarts", "attack.step_size": "step", "attack.loss": "loss",
         "attack.version": "AutoAttack", "attack.attacks": "attacks", "attack.variant": "variant",
         "attack.targeted": "targeted", "eval_repeats": "draws", "surrogate_sha256": "surrogate sha256",
         "attack.n_iter": "iterations"}
HIDDEN = ("surrogate_sha256",)  # differs whenever the surrogate does; the name says enough


# -- reading the store -------------------------------------------------------------------------


def flat_identity(record: dict, fields: tuple[str, ...] = IDENTITY_FIELDS) -> dict[str, str]:
    """Dotted identity fields as JSON text, so records compare key by key (``attack.eot_iter``)."""
    out = {}
    for f in fields:
        value = record.get(f)
        if f == "eps" and value is not None:
            value = round(float(value), 8)
        if isinstance(value, dict):
            for k, v in value.items():
                out[f"{f}.{k}"] = json.dumps(v, sort_keys=True)
        else:
            out[f] = json.dumps(value, sort_keys=True)
    return out


def read_records(results: str | Path) -> tuple[ResultStore, list[dict]]:
    """All finished records, each checked for the fields a report needs (errors name the file)."""
    store = ResultStore(results)
    folder = store.root / "records"
    records, stale = [], []
    for path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
        try:
            rec = json.loads(path.read_text())
        except (OSError, ValueError) as exc:
            raise UserError(f"{path}: unreadable record: {exc}") from None
        if not isinstance(rec, dict):
            raise UserError(f"{path}: a record should be a JSON object")
        if rec.get("protocol") != PROTOCOL:
            stale.append(path)  # made by an older protocol: regenerate it, never mix it in
            continue
        absent = [k for k in REQUIRED if k not in rec]
        if absent:
            raise UserError(f"{path}: record lacks {absent}")
        records.append(rec)
    if stale:
        print(f"note: {len(stale)} record(s) in {folder} were made under an older protocol than "
              f"{PROTOCOL} and are left out; rerun their commands to regenerate them",
              file=sys.stderr)
    return store, records


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


@dataclass
class Cell:
    """The number shown for one suite of one row: the strongest variant, with what it beat."""

    suite: str
    chosen: Variant
    others: list[Variant]
    worst: float
    problems: list[str]
    scores: dict | None = None  # per example: robust, clean (share right), worst (bool)
    # per example robust score of every run (each seed of each variant) with arrays, the
    # chosen variant's first: the worst over attacks takes the minimum over all of them
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
        return (f"{SUITE_COLUMN[self.suite]}: strongest of {len(variants)} settings "
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


def example_scores(store: ResultStore, records: list[dict]) -> tuple[dict | None, list[str]]:
    """Per example, over every seed and draw: the robust and clean scores (share right) and the
    worst case (right in all); ``runs``: the robust score of each record (seed) alone, over its
    draws. None, with a problem, if the arrays are missing or misfit."""
    robust, clean, worst = [], [], None
    for r in records:
        try:
            ex = store.load_examples(r["key"])
            adv, cl = np.asarray(ex["adv"], bool), np.asarray(ex["clean"], bool)
        except (OSError, KeyError, ValueError, UserError) as exc:
            return None, [f"record {r['key']}: no per-example arrays ({exc})"]
        rob = adv & cl
        if worst is not None and rob.shape[1] != worst.shape[0]:
            msg = (f"record {r['key']}: per-example arrays of shape {rob.shape} do not match "
                   f"{worst.shape}")
            return None, [msg]
        robust.append(rob)
        clean.append(cl)
        worst = rob.all(0) if worst is None else worst & rob.all(0)
    return {"robust": np.concatenate(robust).mean(0), "clean": np.concatenate(clean).mean(0),
            "worst": worst, "runs": [rob.mean(0) for rob in robust]}, []


def _make_cell(store: ResultStore, suite: str, variants: list[Variant]) -> Cell:
    """Strongest = lowest mean accuracy; ties go to more seeds, then more examples."""
    ranked = sorted(variants, key=lambda v: (v.mean, -len(v.records), -int(v.records[0]["n"]),
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


@dataclass
class Row:
    """One evaluated (checkpoint, defense with its settings, norm, eps)."""

    model: str
    checkpoint: str
    sha256: str | None
    defense: str
    settings: dict
    defense_text: str
    norm: str
    eps: float
    eps_label: str
    dataset: str
    forwards: int
    card: dict
    cells: dict[str, Cell] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)

    @property
    def defense_label(self) -> str:
        """The defense with the settings that are not a column of their own (N is)."""
        return self.defense_text

    @property
    def worst_scores(self) -> np.ndarray | None:
        """Per image the lowest robust score over every attack run of the row: each seed of
        each variant of each column (None without arrays)."""
        scores = [s for c in self.cells.values() for s in c.all_robust]
        return np.min(np.stack(scores), axis=0) if scores else None

    @property
    def worst_over_attacks(self) -> tuple[float, tuple[float, float]] | None:
        """The mean of ``worst_scores`` and its interval over images."""
        low = self.worst_scores
        return None if low is None else (float(low.mean()), interval(low))

    @property
    def image_set(self) -> tuple[int, str] | None:
        """The (n, data hash) every record of the row shares (``collect_rows`` checks it)."""
        main = self.main_cell
        return None if main is None else image_set(main.records[0])

    @property
    def is_mi(self) -> bool:
        return self.defense.startswith("mi-")

    @property
    def randomized(self) -> bool:
        flag = next((r.get("defense_randomized") for c in self.cells.values()
                     for r in c.records), None)
        return bool(flag) if flag is not None else self.defense != "none"

    @property
    def label(self) -> str:
        return f"{self.model} + {self.defense_label}"

    @property
    def where(self) -> str:
        return f"eps {self.eps_label} {self.norm}"

    @property
    def rank_suite(self) -> str | None:
        """AutoAttack decides the rank; EOT-PGD stands in (marked) only when it is absent."""
        return next((s for s in ("autoattack", "eot-pgd") if s in self.cells), None)

    @property
    def main_cell(self) -> Cell | None:
        """The cell whose records give the clean accuracy and the seed/n columns."""
        return next((self.cells[s] for s in ("autoattack", "eot-pgd", "pgd", "transfer")
                     if s in self.cells), None)

    def missing(self) -> list[str]:
        return [f"missing: {SUITE_COLUMN[s]} for {self.label} ({self.where})"
                for s in SUITES if s not in self.cells]

    def notes(self) -> list[str]:
        out = [c.choice_note() for c in self.cells.values() if c.choice_note()]
        main = self.main_cell
        for s, c in self.cells.items():
            if main is not None and (c.seeds != main.seeds or c.n != main.n):
                out.append(f"{SUITE_COLUMN[s]}: seeds {seeds_text(c.seeds)}, n {c.n}")
        if "transfer" in self.cells and not self.cells["transfer"].others:
            out.append(f"transfer from {self.cells['transfer'].records[0].get('surrogate')}")
        if self.rank_suite == "eot-pgd":
            out.append("no AutoAttack record: rank from EOT-PGD")
        aa, eot = self.cells.get("autoattack"), self.cells.get("eot-pgd")
        if aa is not None and eot is not None and aa.mean > eot.mean:
            out.append(f"AutoAttack reads above EOT-PGD ({100 * aa.mean:.2f} > "
                       f"{100 * eot.mean:.2f}) on the same images: the weaker number is not the "
                       "robustness; see worst over attacks")
        return out + self.problems + [p for c in self.cells.values() for p in c.problems]


def seeds_text(seeds: list[int]) -> str:
    return ",".join(map(str, seeds))


def _row_flags(records: list[dict]) -> list[str]:
    """Warnings the attack run stored (gradient masking, weaker-beats-stronger): never hidden."""
    out = []
    for r in records:
        flags = r.get("flags") or {}
        big = flags.get("large_eps") or {}
        # a transfer attack never differentiates the target, so its large-eps result is no
        # gradient-masking test (older records ran it anyway)
        if big.get("masked") and r["suite"] != "transfer":
            out.append(f"{SUITE_COLUMN.get(r['suite'], r['suite'])} seed {r['seed']}: possible "
                       f"gradient masking (accuracy {big.get('acc', math.nan):.0%} at eps "
                       f"{big.get('eps')})")
        for msg in flags.get("weaker_attack_stronger") or []:
            out.append(f"{SUITE_COLUMN.get(r['suite'], r['suite'])} seed {r['seed']}: {msg}")
    return sorted(set(out))


def _forwards(rec: dict) -> int:
    return int(rec.get("forwards_per_prediction") or 1)


def image_set(record: dict) -> tuple[int, str]:
    """The images a record was measured on: (n, data hash). A row keeps to one."""
    return int(record["n"]), str(record.get("data"))


def _check_one_image_set(row: Row, records: list[dict]) -> None:
    """Every column of a row must be measured on the same images: refuse to mix them."""
    sets: dict[tuple, set[str]] = {}
    for r in records:
        sets.setdefault(image_set(r), set()).add(SUITE_COLUMN.get(r["suite"], r["suite"]))
    if len(sets) > 1:
        parts = "; ".join(f"{', '.join(sorted(cols))} on n={n} ({data})"
                          for (n, data), cols in sorted(sets.items()))
        raise UserError(f"{row.label} at {row.where} mixes image sets ({parts}); every column of "
                        "a row must use the same images: rerun on one set or keep the records "
                        "in separate stores")


def collect_rows(store: ResultStore, records: list[dict]) -> list[Row]:
    """Group records into rows, suites and attack variants; pick each cell's strongest variant."""
    groups: dict[str, list[dict]] = {}
    for rec in records:
        groups.setdefault(json.dumps(flat_identity(rec, ROW_FIELDS), sort_keys=True),
                          []).append(rec)
    names: dict[str, set] = {}
    for rec in records:
        names.setdefault(rec["checkpoint"], set()).add(rec.get("checkpoint_sha256"))
    rows = []
    for recs in groups.values():
        first = recs[0]
        sha = first.get("checkpoint_sha256")
        model = str(first["checkpoint"])
        if len(names[first["checkpoint"]]) > 1:
            model = f"{model}@{(sha or 'unknown')[:8]}"
        card = first.get("model_card") or {}
        row = Row(model=model, checkpoint=str(first["checkpoint"]), sha256=sha,
                  defense=first["defense"], settings=first.get("defense_settings") or {},
                  defense_text=first.get("defense_label") or first["defense"], norm=first["norm"],
                  eps=float(first["eps"]), eps_label=str(first.get("eps_label") or
                                                         f"{first['eps']:.4g}"),
                  dataset=card.get("dataset") or "cifar10", forwards=_forwards(first), card=card)
        for suite in SUITES:
            variants: dict[str, dict[int, dict]] = {}
            idents: dict[str, dict[str, str]] = {}
            for rec in (r for r in recs if r["suite"] == suite):
                ident = flat_identity(rec, VARIANT_FIELDS)
                vkey = json.dumps(ident, sort_keys=True)
                idents[vkey] = ident
                seeds = variants.setdefault(vkey, {})
                old = seeds.get(rec["seed"])
                if old is not None:
                    row.problems.append(f"{SUITE_COLUMN[suite]}: records {old['key']} and "
                                        f"{rec['key']} repeat seed {rec['seed']}; kept the newer")
                if old is None or str(rec.get("created", "")) >= str(old.get("created", "")):
                    seeds[rec["seed"]] = rec
            if variants:
                row.cells[suite] = _make_cell(store, suite, [
                    Variant([s[k] for k in sorted(s)], idents[v]) for v, s in variants.items()])
        _check_one_image_set(row, recs)
        odd = sorted({r["suite"] for r in recs} - set(SUITES))
        if odd:
            row.problems.append(f"records of unknown suite(s) {odd} ignored")
        row.problems.extend(_row_flags([r for c in row.cells.values() for r in c.records]))
        rows.append(row)
    rows.sort(key=lambda r: (r.model, r.defense_label, r.forwards, r.norm, r.eps))
    return rows


def is_headline(row: Row, norm: str) -> bool:
    return row.norm == norm and abs(row.eps - HEADLINE_EPS[norm]) < EPS_TOL



def slug(text: str) -> str:
    """A safe file-name stem."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")
