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
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from mi_bench.errors import UserError
from mi_bench.gains import GAINS_NOTE, gains_table, paired_gains
from mi_bench.leaderboard import DEFAULT_ROOT, SNAPSHOT_FILE, load_leaderboard, rank_of
from mi_bench.model_info import write_model_info
from mi_bench.results import atomic_write_text, check_output_dir
from mi_bench.rows import (
    CSV_PREFIX,
    HEADLINE_EPS,
    MISSING,
    SUITE_COLUMN,
    SUITES,
    WORST_COLUMN,
    Row,
    collect_rows,
    is_headline,
    read_records,
)

FORMATS = ("md", "csv", "html")


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
    headline = [r for r in rows if is_headline(r, threat) and r.dataset == dataset]
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
        num.update({"rank_best": pd.NA, "rank_worst": pd.NA, "randomized": False})
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
        # where the 95% interval over images would fall: a range of ranks, not one rank
        lo, hi = row.cells[suite].ci if suite else (math.nan, math.nan)
        span = (rank_of(round(100 * hi, 2), board), rank_of(round(100 * lo, 2), board)) \
            if suite and not math.isnan(lo) else (pd.NA, pd.NA)
        num = {"rank": rank, "rank_by": suite or "", "source": "mi-bench", **num,
               "rank_best": span[0], "rank_worst": span[1], "randomized": row.randomized}
        md = {"rank": MISSING if suite is None else (
            f"{rank} ({span[0]}–{span[1]})" + (" (EOT-PGD)" if suite == "eot-pgd" else "")),
            "source": "**mi-bench**", **_md_cells(row)}
        entries.append((acc, 1, num, md))
    entries.sort(key=lambda e: (math.isnan(e[0]), -e[0] if not math.isnan(e[0]) else 0, e[1],
                                e[2]["model"]))
    ranked = pd.DataFrame([e[2] for e in entries])
    ranked["randomized"] = ranked["randomized"].fillna(False).astype(bool)
    for col in ("rank", "N", "seeds", "n", "rank_best", "rank_worst"):
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


RANDOMIZED_NOTE = ("Not leaderboard entries: each rank is where the number would fall among the "
                   "deterministic entries above, with the range its 95% interval over images "
                   "spans.")
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
    "the lowest score over every attack of the row (all on the same images), then the mean "
    "(an upper bound where a column is `—`). *seeds*: those of the adaptive column, the cell "
    "that ranks the row; a column with more seeds shows their spread as ± and the notes name "
    "them. *N*: base-model forward passes per "
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
    randomized = rep.ranked["randomized"].to_numpy(dtype=bool)
    lines = [
        "# mi-bench report", "",
        f"- results: `{rep.results}` ({rep.n_records} records, {len(rep.rows)} rows over all eps)",
        f"- baseline: RobustBench {rep.dataset} {rep.threat} ({rep.board_size} entries{snap})",
        f"- headline eps: {rep.headline_label} ({rep.threat}); every eps: `eps_sweep.md`", "",
        LEGEND, "", f"## Ranked at eps {rep.headline_label} {rep.threat}", "",
        _table(rep.ranked_md[~randomized]), "",
    ]
    if randomized.any():
        lines += [
            "## Randomized defenses (RobustBench admits only deterministic ones)", "",
            RANDOMIZED_NOTE, "",
            _table(rep.ranked_md[randomized]), ""]
    gains = paired_gains(rep.rows)
    if gains:
        lines += ["## What each defense changes, paired over the same images", "", GAINS_NOTE,
                  "", _table(gains_table(gains)), ""]
    lines += ["## Missing", ""]
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


@dataclass
class Written:
    """What ``write_report`` produced, for the command to print."""

    files: list[Path]
    notes: list[str]


def write_report(rep: Report, out: str | Path, formats: list[str] | tuple[str, ...] = ("md", "csv"),
                 plots: bool = True, model_info: bool = True) -> Written:
    """Write plots, model_info entries and tables into ``out``, each file atomically.

    Tables come last so ``report.md`` can list the plots and entries (and what was skipped).
    """
    out = check_output_dir(out, "--out")
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
        if fmt == "html":  # one self-contained page: tables with interval bars, plots inline
            from mi_bench.report_html import render_html

            paths = [out / "report.html"]
            atomic_write_text(paths[0], render_html(rep, files, notes))
        elif fmt == "md":
            paths = [out / "report.md", out / "eps_sweep.md"]
            atomic_write_text(paths[1], render_sweep_markdown(rep))
            atomic_write_text(paths[0], render_markdown(rep, notes, listed))
        else:
            paths = [out / "report.csv", out / "eps_sweep.csv"]
            atomic_write_text(paths[0], _csv(rep.ranked))
            atomic_write_text(paths[1], _csv(rep.sweep))
        files += paths
    return Written(files, notes)

