"""Reports: the result store merged with a RobustBench snapshot into one ranked table.

Why: an MI number means little alone. The ranked table puts every evaluated (checkpoint, defense)
at the baseline's headline eps (8/255 Linf, 0.5 L2) among the RobustBench entries, with the
oblivious, adaptive (AutoAttack), EOT-PGD and transfer numbers side by side, so a defense that
only resists the oblivious attack shows it at once. Rules:

* every accuracy cell is ``mean ± std (worst case)`` in percent over seeds: the mean and the
  sample std (ddof=1, shown only with two or more seeds) of the per-seed accuracies, and the
  per-example worst case (correct on clean *and* adversarial input in every draw of every seed);
* among records that differ only in attack settings (steps, EOT, K partners, surrogate, ...)
  the strongest (lowest mean accuracy) is shown and the notes say which one and what it beat;
* a missing cell is ``—`` in both Markdown and CSV, never filled in, and is listed as missing;
* the rank is the 1-based place the adaptive number (AutoAttack, else EOT-PGD, marked so) would
  take among the reliable RobustBench entries (``leaderboard.rank_of``: ties go behind).

Outputs (atomic writes): ``report.md``/``report.csv`` (headline eps), ``eps_sweep.md``/``.csv``
(every eps), ``plots/*.png`` and ``model_info/<dataset>/<threat>/<name>.json``.
"""

from __future__ import annotations

import json
import math
import re
import sys
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from mi_bench.errors import UserError
from mi_bench.intervals import interval
from mi_bench.leaderboard import DEFAULT_ROOT, SNAPSHOT_FILE, load_leaderboard, rank_of
from mi_bench.results import PROTOCOL, ResultStore, atomic_write_text

MISSING = "—"
SUITES = ("pgd", "autoattack", "eot-pgd", "transfer")
SUITE_COLUMN = {"pgd": "oblivious", "autoattack": "adaptive", "eot-pgd": "EOT-PGD",
                "transfer": "transfer"}
WORST_COLUMN = "worst over attacks"
CSV_PREFIX = {"pgd": "oblivious", "autoattack": "adaptive", "eot-pgd": "eot_pgd",
              "transfer": "transfer"}
HEADLINE_EPS = {"Linf": 8 / 255, "L2": 0.5}
EPS_TOL = 1e-6
FORMATS = ("md", "csv")
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

MI_PAPER = {"link": "https://arxiv.org/abs/1909.11515",
            "name": "Mixup Inference: Better Exploiting Mixup to Defend Adversarial Attacks",
            "authors": "Tianyu Pang, Kun Xu, Jun Zhu", "venue": "ICLR 2020"}
METHOD_PAPERS = {
    "mixup": {"link": "https://arxiv.org/abs/1710.09412",
              "name": "mixup: Beyond Empirical Risk Minimization",
              "authors": "Hongyi Zhang, Moustapha Cisse, Yann N. Dauphin, David Lopez-Paz",
              "venue": "ICLR 2018"},
    "iat": {"link": "https://arxiv.org/abs/1906.06784",
            "name": "Interpolated Adversarial Training: Achieving Robust Neural Networks without "
                    "Sacrificing Too Much Accuracy",
            "authors": "Alex Lamb, Vikas Verma, Juho Kannala, Yoshua Bengio",
            "venue": "AISec 2019"},
}


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
    worst case (right in all). None, with a problem, if the arrays are missing or misfit."""
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
            "worst": worst}, []


def _make_cell(store: ResultStore, suite: str, variants: list[Variant]) -> Cell:
    """Strongest = lowest mean accuracy; ties go to more seeds, then more examples."""
    ranked = sorted(variants, key=lambda v: (v.mean, -len(v.records), -int(v.records[0]["n"]),
                                             json.dumps(v.ident, sort_keys=True)))
    scores, problems = example_scores(store, ranked[0].records)
    worst = float(scores["worst"].mean()) if scores else math.nan
    return Cell(suite, ranked[0], ranked[1:], worst, problems, scores)


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
    def worst_over_attacks(self) -> tuple[float, tuple[float, float]] | None:
        """Per image the lowest robust score over the row's attacks, its mean and interval."""
        scores = [c.scores["robust"] for c in self.cells.values() if c.scores is not None]
        if not scores:
            return None
        low = np.min(np.stack(scores), axis=0)
        return float(low.mean()), interval(low)

    @property
    def is_mi(self) -> bool:
        return self.defense.startswith("mi-")

    @property
    def randomized(self) -> bool:
        return self.forwards > 1 or self.defense != "none"

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
                out.append(f"{SUITE_COLUMN[s]}: seeds {_seeds(c.seeds)}, n {c.n}")
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


def _seeds(seeds: list[int]) -> str:
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


def _check_one_image_set(row: Row, records: list[dict]) -> None:
    """Every column of a row must be measured on the same images: refuse to mix them."""
    sets: dict[tuple, set[str]] = {}
    for r in records:
        sets.setdefault((int(r["n"]), str(r.get("data"))), set()).add(
            SUITE_COLUMN.get(r["suite"], r["suite"]))
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


# -- baseline ----------------------------------------------------------------------------------
def parse_baseline(text: str) -> tuple[str, str]:
    """``robustbench:cifar10:Linf`` -> ("cifar10", "Linf"); the only baseline source there is."""
    parts = [p.strip() for p in text.split(":")]
    if len(parts) != 3 or parts[0].lower() != "robustbench":
        raise UserError(f"bad --baseline {text!r}; expected robustbench:DATASET:THREAT, "
                        "e.g. robustbench:cifar10:Linf")
    return parts[1], parts[2]


def board_ranks(board: pd.DataFrame) -> pd.Series:
    """Rank of each RobustBench entry among the reliable ones (ties share; unreliable: none).

    Matches ``rank_of``: an entry with accuracy a is passed by every reliable entry above a.
    """
    acc = pd.to_numeric(board["autoattack_acc"], errors="coerce")
    reliable = ~board["unreliable"].astype(bool) & acc.notna()
    values = acc[reliable].to_numpy()
    ranks = [int((values > a).sum()) + 1 if ok else pd.NA for a, ok in zip(acc, reliable)]
    return pd.Series(ranks, index=board.index, dtype="Int64")


def leaderboard_table(dataset: str, threat: str, top: int | None = None,
                      text: str | None = None, extra_data: bool = True,
                      root: Path | None = None) -> pd.DataFrame:
    """The snapshot with ranks, filtered; ranks are taken before filtering so they stay true."""
    if top is not None and top < 1:
        raise UserError(f"--top must be at least 1, got {top}")
    board = load_leaderboard(dataset, threat, root)
    board.insert(0, "rank", board_ranks(board))
    if not extra_data:
        board = board[~board["extra_data"]]
    if text:
        needle = text.lower()
        hit = pd.Series(False, index=board.index)
        for col in ("model_id", "paper", "architecture"):
            hit |= board[col].str.lower().str.contains(needle, regex=False)
        board = board[hit]
    if top is not None:
        board = board.head(top)
    return board.reset_index(drop=True)


def leaderboard_markdown(board: pd.DataFrame) -> str:
    """A readable subset of the columns; the CSV keeps them all."""
    view = pd.DataFrame({
        "rank": [MISSING if pd.isna(r) else str(r) for r in board["rank"]],
        "model_id": board["model_id"], "paper": board["paper"], "venue": board["venue"],
        "architecture": board["architecture"],
        "clean": [_num(v) for v in board["clean_acc"]],
        "AutoAttack": [_num(v) for v in board["autoattack_acc"]],
        "reported": [_num(v) for v in board["reported_acc"]],
        "extra data": ["yes" if v else "no" for v in board["extra_data"]],
        "forwards": board["forward_passes"].astype(str),
        "unreliable": ["yes" if v else "" for v in board["unreliable"]],
    })
    return view.to_markdown(index=False, disable_numparse=True)


def _num(v: float) -> str:
    return MISSING if v is None or pd.isna(v) else f"{float(v):.2f}"


def _snapshot_date(root: Path | None) -> str | None:
    path = (DEFAULT_ROOT if root is None else Path(root)) / SNAPSHOT_FILE
    try:
        return json.loads(path.read_text()).get("date")
    except (OSError, ValueError):
        return None


# -- the report --------------------------------------------------------------------------------
def fmt_cell(mean: float, std: float, worst: float | None = None,
             ci: tuple[float, float] | None = None) -> str:
    """``85.30 [80.1, 89.6] ± 0.42 (83.00)`` in percent: the 95% interval over images, the std
    over seeds (only with a defined std) and the worst case in parentheses."""
    if mean is None or math.isnan(mean):
        return MISSING
    text = f"{100 * mean:.2f}"
    if ci is not None and not math.isnan(ci[0]):
        text += f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]"
    if std is not None and not math.isnan(std):
        text += f" ± {100 * std:.2f}"
    if worst is not None:
        text += f" ({MISSING if math.isnan(worst) else f'{100 * worst:.2f}'})"
    return text


def _pct(x: float) -> float:
    return math.nan if x is None or math.isnan(x) else round(100 * x, 4)


def _row_record(row: Row) -> dict:
    """Numbers of one MI row, in percent; NaN where there is nothing."""
    main = row.main_cell
    out = {"model": row.model, "defense": row.defense_label, "N": row.forwards,
           "clean_mean": _pct(main.clean_mean) if main else math.nan,
           "clean_std": _pct(main.clean_std) if main else math.nan}
    lo, hi = main.clean_ci if main else (math.nan, math.nan)
    out.update({"clean_ci_low": _pct(lo), "clean_ci_high": _pct(hi)})
    for s in SUITES:
        c = row.cells.get(s)
        p = CSV_PREFIX[s]
        out[f"{p}_mean"] = _pct(c.mean) if c else math.nan
        out[f"{p}_std"] = _pct(c.std) if c else math.nan
        out[f"{p}_worst"] = _pct(c.worst) if c else math.nan
        lo, hi = c.ci if c else (math.nan, math.nan)
        out[f"{p}_ci_low"], out[f"{p}_ci_high"] = _pct(lo), _pct(hi)
    w = row.worst_over_attacks
    out["worst_over_attacks_mean"] = _pct(w[0]) if w else math.nan
    out["worst_over_attacks_ci_low"] = _pct(w[1][0]) if w else math.nan
    out["worst_over_attacks_ci_high"] = _pct(w[1][1]) if w else math.nan
    out.update({"seeds": len(main.seeds) if main else pd.NA, "n": main.n if main else pd.NA,
                "eps": row.eps_label, "norm": row.norm, "dataset": row.dataset,
                "checkpoint_sha256": row.sha256 or "", "notes": "; ".join(row.notes())})
    return out


def _md_cells(row: Row, bold: bool = True) -> dict:
    main = row.main_cell
    out = {"model": f"**{row.model}**" if bold else row.model, "defense": row.defense_label, "N": str(row.forwards),
           "clean": fmt_cell(main.clean_mean, main.clean_std, ci=main.clean_ci) if main
           else MISSING}
    for s in SUITES:
        c = row.cells.get(s)
        out[SUITE_COLUMN[s]] = fmt_cell(c.mean, c.std, c.worst, c.ci) if c else MISSING
    w = row.worst_over_attacks
    out[WORST_COLUMN] = fmt_cell(w[0], None, None, w[1]) if w else MISSING
    out["seeds"] = str(len(main.seeds)) if main else MISSING
    out["n"] = str(main.n) if main else MISSING
    return out


@dataclass
class Report:
    """Everything ``write_report`` needs; built once from the store and the snapshot."""

    results: Path
    dataset: str
    threat: str
    headline_label: str
    n_records: int
    rows: list[Row]
    headline: list[Row]
    ranked: pd.DataFrame
    ranked_md: pd.DataFrame
    sweep: pd.DataFrame
    sweep_md: pd.DataFrame
    missing: list[str]
    unranked: list[str]
    snapshot_date: str | None
    board_size: int


def _is_headline(row: Row, norm: str) -> bool:
    return row.norm == norm and abs(row.eps - HEADLINE_EPS[norm]) < EPS_TOL


def build_report(results: str | Path, baseline: str = "robustbench:cifar10:Linf",
                 root: Path | None = None) -> Report:
    """Merge the store with the baseline; raises UserError on an empty store."""
    dataset, threat = parse_baseline(baseline)
    board = load_leaderboard(dataset, threat, root)
    store, records = read_records(results)
    if not records:
        raise UserError(f"no records in {results}")
    if threat not in HEADLINE_EPS:
        raise UserError(f"no headline eps for threat {threat!r}; known: {sorted(HEADLINE_EPS)}")
    rows = collect_rows(store, records)
    headline = [r for r in rows if _is_headline(r, threat) and r.dataset == dataset]
    unranked = sorted({f"not ranked: {r.label} is a {r.dataset} model; the baseline is "
                       f"{dataset}" for r in rows if r.dataset != dataset})
    missing = [m for r in headline for m in r.missing()]
    have = {(r.model, r.defense_label, r.forwards) for r in headline}
    elsewhere: dict[tuple, list[str]] = {}
    for r in rows:
        if r.dataset == dataset and (r.model, r.defense_label, r.forwards) not in have:
            elsewhere.setdefault((r.label, r.forwards), []).append(r.where)
    headline_label = next((r.eps_label for r in headline), None) or (
        "8/255" if threat == "Linf" else f"{HEADLINE_EPS[threat]:g}")
    for (label, n_fwd), where in sorted(elsewhere.items()):
        missing.append(f"missing: all columns for {label} (N {n_fwd}) at eps {headline_label} "
                       f"{threat}; evaluated only at {', '.join(where)}")

    # the merged ranked table: numbers (CSV) and formatted cells (Markdown), one order
    entries = []
    board = board.assign(rank=board_ranks(board))
    for _, b in board.iterrows():
        notes = [x for x, on in (("extra data", b["extra_data"]),
                                 ("unreliable: unranked", b["unreliable"])) if on]
        num = {"rank": b["rank"], "rank_by": "autoattack", "source": "RobustBench",
               "model": b["model_id"], "defense": "", "N": int(b["forward_passes"]),
               "clean_mean": b["clean_acc"], "clean_std": math.nan}
        num.update({f"{CSV_PREFIX[s]}_{k}": math.nan for s in SUITES
                    for k in ("mean", "std", "worst", "ci_low", "ci_high")})
        num.update({"clean_ci_low": math.nan, "clean_ci_high": math.nan,
                    "worst_over_attacks_mean": math.nan, "worst_over_attacks_ci_low": math.nan,
                    "worst_over_attacks_ci_high": math.nan})
        num.update({"adaptive_mean": b["autoattack_acc"], "seeds": pd.NA, "n": pd.NA,
                    "eps": b["eps"], "norm": threat, "dataset": dataset,
                    "checkpoint_sha256": "", "notes": "; ".join(notes)})
        md = {"rank": MISSING if pd.isna(b["rank"]) else str(b["rank"]),
              "source": "RobustBench", "model": b["model_id"], "defense": "",
              "N": str(b["forward_passes"]), "clean": _num(b["clean_acc"])}
        md.update({SUITE_COLUMN[s]: "" for s in SUITES})
        md[WORST_COLUMN] = ""
        md.update({"adaptive": _num(b["autoattack_acc"]), "seeds": "", "n": ""})
        entries.append((b["autoattack_acc"], 0, num, md))
    for row in headline:
        num = _row_record(row)
        suite = row.rank_suite
        # ranked at the shown precision (RobustBench's two decimals): a shown tie is a tie
        acc = round(100 * row.cells[suite].mean, 2) if suite else math.nan
        rank = rank_of(acc, board) if suite else pd.NA
        num = {"rank": rank, "rank_by": suite or "", "source": "mi-bench", **num}
        md = {"rank": MISSING if suite is None else (
            str(rank) + (" (EOT-PGD)" if suite == "eot-pgd" else "")),
            "source": "**mi-bench**", **_md_cells(row)}
        entries.append((acc, 1, num, md))
    entries.sort(key=lambda e: (math.isnan(e[0]), -e[0] if not math.isnan(e[0]) else 0, e[1],
                                e[2]["model"]))
    ranked = pd.DataFrame([e[2] for e in entries])
    for col in ("rank", "N", "seeds", "n"):
        ranked[col] = ranked[col].astype("Int64")
    ranked_md = pd.DataFrame([e[3] for e in entries])

    sweep = pd.DataFrame([_row_record(r) for r in rows])
    for col in ("N", "seeds", "n"):
        sweep[col] = sweep[col].astype("Int64")
    sweep_md = pd.DataFrame([{**_md_cells(r, bold=False), "eps": r.eps_label, "norm": r.norm} for r in rows])
    sweep_md = sweep_md[["model", "defense", "N", "norm", "eps", "clean",
                         *[SUITE_COLUMN[s] for s in SUITES], WORST_COLUMN, "seeds", "n"]]
    return Report(results=Path(results), dataset=dataset, threat=threat,
                  headline_label=headline_label, n_records=len(records), rows=rows,
                  headline=headline, ranked=ranked, ranked_md=ranked_md, sweep=sweep,
                  sweep_md=sweep_md, missing=missing, unranked=unranked,
                  snapshot_date=_snapshot_date(root), board_size=len(board))


LEGEND = (
    "Cells are accuracy in percent: `mean [95% interval over images] ± std over seeds (worst "
    "case)`. The interval is a bootstrap over images of each image's share of correct (seed, "
    "draw) pairs, or Wilson's with one draw and one seed; a difference inside it is not a "
    "difference. The std is the sample "
    "std (ddof=1) of the per-seed accuracies, shown only with two or more seeds; the worst case "
    "counts an example as robust only if it is classified correctly, clean and attacked, in every "
    "evaluation draw of every seed. *oblivious*: PGD on the undefended base model; *adaptive*: "
    "AutoAttack against the defended model; *EOT-PGD*: PGD with expectation over MI's randomness; "
    "*transfer*: adversarial examples from a surrogate model. *worst over attacks*: per image, "
    "the lowest score over every attack of the row (all on the same images), then the mean. "
    "*N*: base-model forward passes per "
    "prediction (1 + MI partners). *rank*: for a **mi-bench** row, the place its adaptive number "
    "(at two decimals) would take among the reliable RobustBench entries, ties going behind "
    "(marked `(EOT-PGD)` where no AutoAttack record exists and EOT-PGD stands in); RobustBench "
    "rows keep their own ranks, `—` for entries RobustBench flags unreliable. `—` in a number "
    "cell: not measured (never filled in)."
)


def _table(md: pd.DataFrame) -> str:
    return md.to_markdown(index=False, disable_numparse=True) if len(md) else "(no rows)"


def render_markdown(rep: Report, skipped: list[str] | None = None,
                    files: list[str] | None = None) -> str:
    """The whole ``report.md``."""
    snap = f", snapshot {rep.snapshot_date}" if rep.snapshot_date else ""
    lines = [
        "# mi-bench report", "",
        f"- results: `{rep.results}` ({rep.n_records} records, {len(rep.rows)} rows over all eps)",
        f"- baseline: RobustBench {rep.dataset} {rep.threat} ({rep.board_size} entries{snap})",
        f"- headline eps: {rep.headline_label} ({rep.threat}); every eps: `eps_sweep.md`", "",
        LEGEND, "", f"## Ranked at eps {rep.headline_label} {rep.threat}", "",
        _table(rep.ranked_md), "", "## Missing", "",
    ]
    lines += [f"- {m}" for m in rep.missing] or ["- nothing: every column is measured"]
    lines += ["", "## Notes", ""]
    notes = [f"- {r.label} (N {r.forwards}): {n}" for r in rep.headline for n in r.notes()]
    notes += [f"- {u}" for u in rep.unranked]
    lines += notes or ["- none"]
    if files or skipped:
        lines += ["", "## Plots and RobustBench entries", ""]
        lines += [f"- {p}" for p in files or []] + [f"- {p}" for p in skipped or []]
    return "\n".join(lines) + "\n"


def render_sweep_markdown(rep: Report) -> str:
    """``eps_sweep.md``: every row at every eps, with its missing cells."""
    lines = ["# mi-bench eps sweep", "", LEGEND.split(" *rank*")[0] + " `—`: not measured.", "", _table(rep.sweep_md),
             "", "## Missing", ""]
    missing = [m for r in rep.rows for m in r.missing()]
    lines += [f"- {m}" for m in missing] or ["- nothing"]
    notes = [f"- {r.label} ({r.where}): {n}" for r in rep.rows for n in r.notes()]
    lines += ["", "## Notes", ""] + (notes or ["- none"])
    return "\n".join(lines) + "\n"


def _csv(frame: pd.DataFrame) -> str:
    return frame.to_csv(index=False, na_rep=MISSING, lineterminator="\n")


def parse_formats(text: str) -> list[str]:
    """``md,csv`` -> ["md", "csv"]; anything else is a user error."""
    formats = [f.strip().lower() for f in text.split(",") if f.strip()]
    bad = [f for f in formats if f not in FORMATS]
    if bad or not formats:
        raise UserError(f"bad --format {text!r}; expected a comma-separated subset of {FORMATS}")
    return list(dict.fromkeys(formats))


def _out_dir(out: str | Path) -> Path:
    out = Path(out)
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is a file, expected a folder")
    out.mkdir(parents=True, exist_ok=True)
    return out


@dataclass
class Written:
    """What ``write_report`` produced, for the command to print."""

    files: list[Path]
    notes: list[str]


def write_report(rep: Report, out: str | Path, formats: list[str] | tuple[str, ...] = FORMATS,
                 plots: bool = True, model_info: bool = True) -> Written:
    """Write plots, model_info entries and tables into ``out``, each file atomically.

    Tables come last so ``report.md`` can list the plots and entries (and what was skipped).
    """
    out = _out_dir(out)
    files: list[Path] = []
    notes: list[str] = []
    if plots:
        from mi_bench.plots import make_plots

        made = make_plots(rep.rows, out / "plots")
        files += made.files
        notes += made.skipped
    if model_info:
        paths, skipped = write_model_info(rep.rows, out)
        files += paths
        notes += skipped
    listed = [f"`{p.relative_to(out)}`" for p in files]
    for fmt in formats:
        if fmt == "md":
            paths = [out / "report.md", out / "eps_sweep.md"]
            atomic_write_text(paths[1], render_sweep_markdown(rep))
            atomic_write_text(paths[0], render_markdown(rep, notes, listed))
        else:
            paths = [out / "report.csv", out / "eps_sweep.csv"]
            atomic_write_text(paths[0], _csv(rep.ranked))
            atomic_write_text(paths[1], _csv(rep.sweep))
        files += paths
    return Written(files, notes)


# -- RobustBench-format entries ----------------------------------------------------------------
def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", text).strip("-")


def _step(step: float, norm: str) -> str:
    """Linf steps read as k/255, the unit every paper uses."""
    return f"{step * 255:.3g}/255" if norm == "Linf" else f"{step:.4g}"


def _attack_text(rec: dict) -> str:
    """One record's attack settings in words, for footnotes."""
    a = rec.get("attack") or {}
    if rec["suite"] == "autoattack":
        text = (f"AutoAttack {a.get('version')} ({', '.join(a.get('attacks') or [])}), "
                f"{a.get('n_iter', 100)} iterations, EOT {a.get('eot_iter')}, restarts "
                f"{a.get('restarts')}")
    else:
        name = "APGD" if a.get("variant") == "apgd" else "PGD"
        step = a.get("step_size")
        text = (f"{'targeted ' if a.get('targeted') else ''}{name}-{a.get('loss', 'ce').upper()}"
                f" {a.get('steps')} steps" + (f", step {_step(step, rec['norm'])}" if step else "") +
                f", EOT {a.get('eot_iter')}, restarts {a.get('restarts')}")
    if rec.get("attack_draws"):
        text += f", K={rec['attack_draws']} defense draws inside each attack forward"
    if rec["suite"] == "transfer":
        text += f", transferred from {rec.get('surrogate')}"
    return text


def model_info_entry(row: Row) -> dict | None:
    """RobustBench ``model_info`` fields for one row; None without an adaptive number."""
    suite = row.rank_suite
    if suite is None:
        return None
    cell = row.cells[suite]
    rec = cell.records[0]
    method = row.card.get("method") or "unknown"
    paper = MI_PAPER if row.is_mi else METHOD_PAPERS.get(method, {
        "link": "", "name": f"{method} training, no inference-time defense", "authors": "",
        "venue": "mi-bench"})
    arch = row.card.get("arch") or "unknown"
    foot = [f"mi-bench evaluation of checkpoint {row.checkpoint} ({method} training, {arch}, "
            f"{row.card.get('epochs')} epochs, sha256 {(row.sha256 or 'unknown')[:12]})"
            + (f" with the inference-time defense {row.defense_label}, {row.forwards} "
               "forward passes per prediction" if row.defense != "none"
               else " without an inference-time defense") + "."]
    foot.append(f"Accuracies are means over {len(cell.seeds)} seed(s) ({_seeds(cell.seeds)}) on "
                f"the first {cell.n} test images with {rec.get('eval_repeats')} evaluation "
                f"draw(s) each; per-example worst case over seeds and draws "
                + (f"{100 * cell.worst:.2f}%" if not math.isnan(cell.worst) else "unknown")
                + (f"; std over seeds {100 * cell.std:.2f}" if not math.isnan(cell.std) else "")
                + ".")
    foot.append(f"Attack: {_attack_text(rec)}.")
    if suite == "eot-pgd":
        foot.append("No AutoAttack record: autoattack_acc holds the EOT-PGD accuracy.")
    if row.randomized:
        foot.append(f"The defense is randomized (fresh draws for every prediction), so the "
                    f"model costs {row.forwards} forward passes per prediction and accuracies "
                    "vary between draws.")
        if row.settings.get("pool_split") == "test":
            foot.append("MI partners are drawn from the test split.")
    if row.problems:
        foot.append("Warnings: " + "; ".join(row.problems) + ".")
    return {
        "link": paper["link"], "name": paper["name"], "authors": paper["authors"],
        "additional_data": False, "number_forward_passes": row.forwards,
        "dataset": row.dataset, "venue": paper["venue"],
        "architecture": f"{arch}" + (f" + {row.defense}" if row.defense != "none" else ""),
        "eps": row.eps_label, "clean_acc": f"{100 * cell.clean_mean:.2f}",
        "reported": f"{100 * cell.mean:.2f}", "autoattack_acc": f"{100 * cell.mean:.2f}",
        "footnote": " ".join(foot), "unreliable": False,
    }


def model_info_name(row: Row, rows: list[Row]) -> str:
    """``mibench_<model>_<defense>``, plus N and lambda when one checkpoint has several MIs."""
    same = [r for r in rows if (r.model, r.defense, r.norm) == (row.model, row.defense, row.norm)]
    name = f"mibench_{row.model}_{row.defense}"
    if len(same) > 1 and row.settings:
        name += "_" + "_".join(f"{k}{v}" for k, v in sorted(row.settings.items())
                               if k not in ("pool", "mode") and not isinstance(v, dict))
    return _slug(name)


def write_model_info(rows: list[Row], out: str | Path) -> tuple[list[Path], list[str]]:
    """One ``model_info/<dataset>/<threat>/<name>.json`` per row at its norm's headline eps.

    Returns the written paths and a note for each row skipped for lack of an adaptive number.
    """
    head = [r for r in rows if r.norm in HEADLINE_EPS and _is_headline(r, r.norm)]
    written, skipped = [], []
    for row in head:
        entry = model_info_entry(row)
        if entry is None:
            skipped.append(f"model_info skipped for {row.label} ({row.where}): no AutoAttack "
                           "or EOT-PGD record")
            continue
        path = Path(out) / "model_info" / row.dataset / row.norm / \
            f"{model_info_name(row, head)}.json"
        atomic_write_text(path, json.dumps(entry, indent=2, ensure_ascii=False) + "\n")
        written.append(path)
    return written, skipped
