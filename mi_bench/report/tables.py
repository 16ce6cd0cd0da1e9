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
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from mi_bench.errors import UserError
from mi_bench.report.columns import (
    ABSENT,
    BLANK,
    MISSING,
    RANDOMIZED_NOTE,
    Acc,
    Empty,
    Published,
    csv_frame,
    fmt_number,
    markdown_frame,
    ranked_legend,
    suite_column,
    sweep_legend,
)
from mi_bench.report.gains import GAINS_MD, GAINS_NOTE, paired_gains
from mi_bench.report.leaderboard import DEFAULT_ROOT, SNAPSHOT_FILE, load_leaderboard, rank_of
from mi_bench.report.model_info import write_model_info
from mi_bench.report.rows import (
    HEADLINE_EPS,
    Row,
    collect_rows,
    is_headline,
    ranking_suites,
    read_records,
)
from mi_bench.results import atomic_write_text, check_output_dir

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
        "clean": [fmt_number(v) for v in board["clean_acc"]],
        "AutoAttack": [fmt_number(v) for v in board["autoattack_acc"]],
        "reported": [fmt_number(v) for v in board["reported_acc"]],
        "extra data": ["yes" if v else "no" for v in board["extra_data"]],
        "forwards": board["forward_passes"].astype(str),
        "unreliable": ["yes" if v else "" for v in board["unreliable"]],
    })
    return view.to_markdown(index=False, disable_numparse=True)


def _snapshot_date(root: Path | None) -> str | None:
    path = (DEFAULT_ROOT if root is None else Path(root)) / SNAPSHOT_FILE
    try:
        return json.loads(path.read_text()).get("date")
    except (OSError, ValueError):
        return None


# -- the items of the tables -------------------------------------------------------------------
class RowItem:
    """A mi-bench row as a table reads it (``columns.py``), with its rank where it has one."""

    source, source_text = "mi-bench", "**mi-bench**"

    def __init__(self, row: Row, bold: bool = False, rank: Any = pd.NA, rank_by: str = "",
                 rank_text: str = MISSING, rank_span: tuple = (pd.NA, pd.NA)):
        self.row, self.rank, self.rank_by, self.rank_text = row, rank, rank_by, rank_text
        self.rank_span = rank_span
        self.main = row.main_cell
        self.model = row.model
        self.model_text = f"**{row.model}**" if bold else row.model
        self.defense, self.forwards = row.defense_label, row.forwards
        self.randomized, self.eps, self.norm = row.randomized, row.eps_label, row.norm
        self.dataset, self.sha256 = row.dataset, row.sha256 or ""
        self.notes = "; ".join(row.notes())
        main = self.main
        self.seeds = len(main.seeds) if main else pd.NA
        self.n = main.n if main else pd.NA
        self.seeds_text = str(self.seeds) if main else MISSING
        self.n_text = str(self.n) if main else MISSING

    @property
    def clean(self) -> Acc | Empty:
        m = self.main
        return Acc(m.clean_mean, m.clean_std, ci=m.clean_ci) if m else ABSENT

    def suite(self, name: str) -> Acc | Empty:
        c = self.row.cells.get(name)
        return Acc(c.mean, c.std, c.worst, c.ci) if c else ABSENT

    @property
    def worst(self) -> Acc | Empty:
        w = self.row.worst_over_attacks
        return Acc(w[0], None, None, w[1]) if w else ABSENT


class BoardItem:
    """A RobustBench entry as a table reads it: its own numbers, blank in mi-bench's columns."""

    source = source_text = "RobustBench"
    defense, sha256, worst, randomized = "", "", BLANK, False
    seeds = n = pd.NA
    seeds_text = n_text = ""
    rank_span = (pd.NA, pd.NA)

    def __init__(self, b: pd.Series, dataset: str, threat: str, rank_by: str):
        self.b, self.rank, self.rank_by = b, b["rank"], rank_by
        self.rank_text = MISSING if pd.isna(b["rank"]) else str(b["rank"])
        self.model = self.model_text = b["model_id"]
        self.forwards = int(b["forward_passes"])
        self.clean = Published(b["clean_acc"])
        self.eps, self.norm, self.dataset = b["eps"], threat, dataset
        self.notes = "; ".join(x for x, on in (("extra data", b["extra_data"]),
                                               ("unreliable: unranked", b["unreliable"])) if on)

    def suite(self, name: str) -> Published | Empty:
        """RobustBench's AutoAttack number sits in the ranking suite's column."""
        return Published(self.b["autoattack_acc"]) if name == self.rank_by else BLANK


# the tables: Markdown and CSV columns (``columns.py``); "suites" stands for every suite
RANKED_MD = ("rank", "source", "model", "defense", "N", "clean", "suites", "worst", "seeds", "n")
RANKED_CSV = ("rank", "source", "model", "defense", "N", "clean", "suites", "clean_ci", "worst",
              "rank_span", "randomized", "seeds", "n", "eps", "norm", "dataset",
              "checkpoint_sha256", "notes")
SWEEP_MD = ("model", "defense", "N", "norm", "eps", "clean", "suites", "worst", "seeds", "n")
SWEEP_CSV = ("model", "defense", "N", "clean", "clean_ci", "suites", "worst", "seeds", "n", "eps",
             "norm", "dataset", "checkpoint_sha256", "notes")


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

    # the merged ranked table: RobustBench entries and mi-bench rows, one order
    first = ranking_suites()[0]
    board = board.assign(rank=board_ranks(board))
    entries = [(b["autoattack_acc"], 0, BoardItem(b, dataset, threat, first))
               for _, b in board.iterrows()]
    for row in headline:
        suite = row.rank_suite
        # ranked at the shown precision (RobustBench's two decimals): a shown tie is a tie
        acc = round(100 * row.cells[suite].mean, 2) if suite else math.nan
        rank = rank_of(acc, board) if suite else pd.NA
        # where the 95% interval over images would fall: a range of ranks, not one rank
        lo, hi = row.cells[suite].ci if suite else (math.nan, math.nan)
        span = (rank_of(round(100 * hi, 2), board), rank_of(round(100 * lo, 2), board)) \
            if suite and not math.isnan(lo) else (pd.NA, pd.NA)
        text = MISSING if suite is None else f"{rank} ({span[0]}–{span[1]})" + (
            f" ({suite_column(suite)})" if suite != first else "")
        entries.append((acc, 1, RowItem(row, True, rank, suite or "", text, span)))
    entries.sort(key=lambda e: (math.isnan(e[0]), -e[0] if not math.isnan(e[0]) else 0, e[1],
                                e[2].model))
    items = [e[2] for e in entries]
    ranked = csv_frame(items, RANKED_CSV, "ranked")
    ranked_md = markdown_frame(items, RANKED_MD, "ranked")
    sweep_items = [RowItem(r) for r in rows]
    sweep = csv_frame(sweep_items, SWEEP_CSV, "sweep")
    sweep_md = markdown_frame(sweep_items, SWEEP_MD, "sweep")
    return Report(results=Path(results), dataset=dataset, threat=threat,
                  headline_label=headline_label, n_records=len(records), rows=rows,
                  headline=headline, ranked=ranked, ranked_md=ranked_md, sweep=sweep,
                  sweep_md=sweep_md, missing=missing, unranked=unranked,
                  snapshot_date=_snapshot_date(root), board_size=len(board))


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
        ranked_legend(), "", f"## Ranked at eps {rep.headline_label} {rep.threat}", "",
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
                  "", _table(markdown_frame(gains, GAINS_MD, "gains")), ""]
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
    lines = ["# mi-bench eps sweep", "", sweep_legend(), "", _table(rep.sweep_md),
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
    removed: list[str] = field(default_factory=list)  # console only, not in report.md


def write_report(rep: Report, out: str | Path, formats: list[str] | tuple[str, ...] = ("md", "csv"),
                 plots: bool = True, model_info: bool = True) -> Written:
    """Write plots, model_info entries and tables into ``out``, each file atomically.

    Tables come last so ``report.md`` can list the plots and entries (and what was skipped).
    """
    out = check_output_dir(out, "--out")
    files: list[Path] = []
    notes: list[str] = []
    removed: list[str] = []
    if plots:
        from mi_bench.report.plots import make_plots

        made = make_plots(rep.rows, out / "plots")
        files += made.files
        notes += made.skipped
    if model_info:
        paths, skipped, removed = write_model_info(rep.rows, out)
        files += paths
        notes += skipped
    listed = [f"`{p.relative_to(out)}`" for p in files]
    for fmt in formats:
        if fmt == "html":  # one self-contained page: tables with interval bars, plots inline
            from mi_bench.report.html import render_html

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
    return Written(files, notes, removed)

