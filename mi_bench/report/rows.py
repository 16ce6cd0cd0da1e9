"""Rows of results: records grouped into (checkpoint, defense, norm, eps) rows with one cell per
suite, each cell the strongest attack setting with per-example scores and 95% intervals.

Rules: a row never mixes image sets (every column on the same images); among records that differ
only in attack settings (steps, EOT, K, surrogate, ...) the strongest (lowest mean on selection
draws) is the cell and the notes say what it beat (on scoring draws); records of an older
protocol are left out.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from mi_bench.attacks.draws import held_out_worst, worst_scores
from mi_bench.attacks.registry import find_suite, get_suite, suite_names
from mi_bench.defenses import defense_family, defense_randomized
from mi_bench.errors import UserError
from mi_bench.intervals import interval
from mi_bench.report.cells import Cell, Variant, make_cell
from mi_bench.report.columns import suite_column, suite_order, suite_title
from mi_bench.results import PROTOCOL, ResultStore

HEADLINE_EPS = {"Linf": 8 / 255, "L2": 0.5}
EPS_TOL = 1e-6

# What makes a row, what makes an attack setting within a row's suite, and the seed on top.
ROW_FIELDS = ("checkpoint", "checkpoint_sha256", "defense", "defense_settings", "norm", "eps")
VARIANT_FIELDS = ("attack", "attack_draws", "n", "eval_repeats", "data", "surrogate",
                  "surrogate_sha256")
IDENTITY_FIELDS = (*ROW_FIELDS, "suite", *VARIANT_FIELDS, "seed")
REQUIRED = ("key", "checkpoint", "defense", "suite", "norm", "eps", "seed", "n", "clean_acc",
            "robust_acc")


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
        """Per image the worst candidate among the clean image and every attack run of the
        row (each seed of each variant of each column; None without arrays). A randomized row
        chooses on held-out scoring draws (``held_out_worst``: the records' selection draws are
        spent on their own choices); a deterministic one has one draw and no noise (and a
        randomized one with a single scoring draw chooses on selection draws)."""
        return self.worst_scores_within(None)

    def worst_scores_within(self, attacks: dict[str, set[str]] | None) -> np.ndarray | None:
        """``worst_scores`` over the runs of column s whose attacks all lie in ``attacks[s]``
        (every run when None): the row as it reads against a given set of attacks."""
        runs = [r for s, c in self.cells.items() for r in c.all_robust
                if attacks is None or r["attacks"] <= attacks.get(s, set())]
        main = self.main_cell
        if not runs or main is None or main.scores is None:
            return None
        draws = [main.scores["clean_draws"], *(r["draws"] for r in runs)]
        if self.randomized and min(len(d) for d in draws) >= 2:
            return held_out_worst(draws)
        select = [main.scores["clean_select"], *(r["select"] for r in runs)]
        score = [main.scores["clean"], *(r["draws"].mean(0) for r in runs)]
        return worst_scores(np.stack(select), np.stack(score))

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
        return defense_family(self.defense) == "mi"

    @property
    def undefended(self) -> bool:
        """The bare model: the row a defended row of the same model is paired with."""
        return defense_family(self.defense) == "none"

    @property
    def randomized(self) -> bool:
        flag = next((r.get("defense_randomized") for c in self.cells.values()
                     for r in c.records), None)
        if flag is None:
            flag = defense_randomized(self.defense)
        return bool(flag) if flag is not None else not self.undefended

    @property
    def label(self) -> str:
        return f"{self.model} + {self.defense_label}"

    @property
    def where(self) -> str:
        return f"eps {self.eps_label} {self.norm}"

    @property
    def rank_suite(self) -> str | None:
        """AutoAttack decides the rank; EOT-PGD stands in (marked) only when it is absent."""
        return next((s for s in ranking_suites() if s in self.cells), None)

    @property
    def main_cell(self) -> Cell | None:
        """The cell whose records give the clean accuracy and the seed/n columns."""
        return next((self.cells[s] for s in suite_names() if s in self.cells), None)

    def missing(self) -> list[str]:
        return [f"missing: {suite_column(s)} for {self.label} ({self.where})"
                for s in suite_order() if s not in self.cells]

    def notes(self) -> list[str]:
        out = [c.choice_note() for c in self.cells.values() if c.choice_note()]
        main = self.main_cell
        for s, c in self.cells.items():
            if main is not None and (c.seeds != main.seeds or c.n != main.n):
                out.append(f"{suite_column(s)}: seeds {seeds_text(c.seeds)}, n {c.n}")
        for s, c in self.cells.items():
            if find_suite(s).target == "surrogate" and not c.others:
                out.append(f"{suite_column(s)} from {c.records[0].get('surrogate')}")
        ranking = ranking_suites()
        if self.rank_suite is not None and self.rank_suite != ranking[0]:
            out.append(f"no {suite_title(ranking[0])} record: rank from {suite_column(self.rank_suite)}")
        first, second = (self.cells.get(s) for s in ranking[:2])
        if first is not None and second is not None and first.mean > second.mean:
            out.append(f"{suite_title(ranking[0])} reads above {suite_column(ranking[1])} "
                       f"({100 * first.mean:.2f} > {100 * second.mean:.2f}) on the same images: "
                       "the weaker number is not the robustness; see worst over attacks")
        out += self._worst_above_a_column()
        return out + self.problems + [p for c in self.cells.values() for p in c.problems]

    def _worst_above_a_column(self) -> list[str]:
        """Said when the worst over attacks reads above a column: per image it chose on few
        held-out draws among several runs and kept some weaker points. Quoting the lower column
        instead would be a choice read on its own scoring draws, so both stay shown."""
        worst = self.worst_over_attacks if self.randomized else None
        low = min((c for c in self.cells.values() if c.scores is not None),
                  key=lambda c: c.mean, default=None)
        if worst is None or low is None or worst[0] <= low.mean + 1e-9:
            return []
        column = suite_column(low.suite)
        return [(f"worst over attacks ({100 * worst[0]:.2f}) reads above {column} "
                 f"({100 * low.mean:.2f}): chosen per image on held-out halves of the scoring "
                 "draws, it kept some weaker points; both are upper bounds, and the lower is not "
                 "quoted, being picked on its own scoring draws")]


def ranking_suites() -> list[str]:
    """The suites that may rank a row, first choice first (AutoAttack, then EOT-PGD)."""
    return [s for s in suite_names() if get_suite(s).ranks]


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
        entry = find_suite(r["suite"])
        if big.get("masked") and (entry is None or entry.target != "surrogate"):
            out.append(f"{suite_column(r['suite'])} seed {r['seed']}: possible "
                       f"gradient masking (accuracy {big.get('acc', math.nan):.0%} at eps "
                       f"{big.get('eps')})")
        for msg in flags.get("weaker_attack_stronger") or []:
            out.append(f"{suite_column(r['suite'])} seed {r['seed']}: {msg}")
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
        sets.setdefault(image_set(r), set()).add(suite_column(r["suite"]))
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
        for suite in suite_order():
            variants: dict[str, dict[int, dict]] = {}
            idents: dict[str, dict[str, str]] = {}
            for rec in (r for r in recs if r["suite"] == suite):
                ident = flat_identity(rec, VARIANT_FIELDS)
                vkey = json.dumps(ident, sort_keys=True)
                idents[vkey] = ident
                seeds = variants.setdefault(vkey, {})
                old = seeds.get(rec["seed"])
                if old is not None:
                    row.problems.append(f"{suite_column(suite)}: records {old['key']} and "
                                        f"{rec['key']} repeat seed {rec['seed']}; kept the newer")
                if old is None or str(rec.get("created", "")) >= str(old.get("created", "")):
                    seeds[rec["seed"]] = rec
            if variants:
                row.cells[suite] = make_cell(store, suite, [
                    Variant([s[k] for k in sorted(s)], idents[v]) for v, s in variants.items()])
        _check_one_image_set(row, recs)
        odd = sorted({r["suite"] for r in recs} - set(suite_names()))
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
