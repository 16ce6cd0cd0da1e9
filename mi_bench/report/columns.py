"""Every column of every table, declared once: key, Markdown header, CSV fields, how it reads an
item (a row of a table) and its legend line.

A table (``tables.py``: the ranked table, the eps sweep, the paired gains; the console summary
of ``mi-bench attack``) is a list of column keys for its Markdown and one for its CSV, rendered
by :func:`markdown_frame` and :func:`csv_frame`. A column reads its item's attributes; an item
that has no value for it gives :data:`BLANK` (RobustBench entries in mi-bench's columns) or
:data:`ABSENT` (not measured: ``—``, never filled in). The suite columns come from the attack
registry, so a registered suite gets its column in every table without an edit here. Adding a
column is one :func:`register_column` call (and its test).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from mi_bench.attacks.registry import find_suite, suites_by_position

MISSING = "—"
PARTS = ("mean", "std", "worst", "ci_low", "ci_high")


def pct(x: float | None) -> float:
    """A fraction as percent, rounded to 4 places; NaN where there is nothing."""
    return math.nan if x is None or math.isnan(x) else round(100 * x, 4)


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


def fmt_number(v: float | None) -> str:
    """A published number (already in percent) at RobustBench's two decimals."""
    return MISSING if v is None or pd.isna(v) else f"{float(v):.2f}"


# -- values a column reads ----------------------------------------------------------------------
@dataclass(frozen=True)
class Acc:
    """A measured accuracy (fractions): mean, std over seeds, worst case, interval over images."""

    mean: float
    std: float | None = None
    worst: float | None = None
    ci: tuple[float, float] | None = None

    def text(self) -> str:
        return fmt_cell(self.mean, self.std, self.worst, self.ci)

    def part(self, name: str) -> float:
        lo, hi = self.ci if self.ci is not None else (math.nan, math.nan)
        return pct({"mean": self.mean, "std": self.std, "worst": self.worst, "ci_low": lo,
                    "ci_high": hi}[name])


@dataclass(frozen=True)
class Published:
    """A leaderboard's own number, in percent; only its mean exists."""

    value: float

    def text(self) -> str:
        return fmt_number(self.value)

    def part(self, name: str) -> float:
        return self.value if name == "mean" else math.nan


@dataclass(frozen=True)
class Empty:
    """Nothing to show: ``shown`` in Markdown, ``na`` in every CSV field."""

    shown: str
    na: Any = math.nan

    def text(self) -> str:
        return self.shown

    def part(self, name: str) -> Any:
        return self.na


BLANK = Empty("")  # a cell that does not apply to the item (a RobustBench entry's MI columns)
ABSENT = Empty(MISSING)  # a measurement that was not made


# -- columns ------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Column:
    key: str
    header: str | None  # the Markdown header (None: CSV only)
    read: Callable[[Any], Any]  # the item's value: an Acc/Published/Empty, or plain values
    fields: tuple[str, ...] = ()  # CSV field names (): Markdown only
    parts: tuple[str, ...] = ()  # which parts of an accuracy go to ``fields``, in order
    show: Callable[[Any], str] | None = None  # Markdown text, where it is not ``str(value)``
    dtype: str | tuple | None = None  # pandas dtype of the CSV fields ("Int64", "bool"), or
    # one per field
    legend: str = ""
    tables: tuple[str, ...] = ()  # tables it joins at their end ('ranked', 'sweep', 'gains',
    # 'summary'); the built-in columns are placed by each table's own key list instead

    def text(self, item: Any) -> str:
        if self.show is not None:
            return self.show(item)
        value = self.read(item)
        return value.text() if hasattr(value, "text") else str(value)

    def numbers(self, item: Any) -> list:
        value = self.read(item)
        if self.parts:
            return [value.part(p) for p in self.parts]
        if len(self.fields) == 1:
            return [value.part("mean") if hasattr(value, "part") else value]
        return list(value)


_COLUMNS: dict[str, Column] = {}


def register_column(column: Column) -> Column:
    if column.key in _COLUMNS:
        raise ValueError(f"column {column.key!r} declared twice")
    _COLUMNS[column.key] = column
    return column


def unregister_column(key: str) -> None:
    """Remove a column a test declared."""
    _COLUMNS.pop(key, None)


def suite_column(suite: str) -> str:
    """A suite's column header ('oblivious' for pgd); the name itself for an unknown suite."""
    entry = find_suite(suite)
    return entry.column if entry is not None else suite


def suite_title(suite: str) -> str:
    """A suite's name in prose ('AutoAttack'); the name itself for an unknown suite."""
    entry = find_suite(suite)
    return entry.title if entry is not None else suite


def suite_order() -> list[str]:
    """The suites in the tables' column order."""
    return [e.name for e in suites_by_position()]


def _suite_column(suite: str) -> Column:
    entry = find_suite(suite)
    return Column(f"suite:{suite}", entry.column, lambda item: item.suite(suite),
                  tuple(f"{entry.csv}_{p}" for p in PARTS), PARTS, legend=entry.legend)


def get_column(key: str) -> Column:
    if key.startswith("suite:"):
        return _suite_column(key.removeprefix("suite:"))
    return _COLUMNS[key]


def expand(keys: tuple[str, ...], table: str | None = None) -> list[Column]:
    """Column keys with ``"suites"`` standing for every registered suite's column, then the
    registered columns that join ``table``."""
    out = []
    for key in keys:
        out += [_suite_column(s) for s in suite_order()] if key == "suites" else [get_column(key)]
    return out + [c for c in _COLUMNS.values() if table in c.tables and c not in out]


def markdown_frame(items: list, keys: tuple[str, ...], table: str | None = None) -> pd.DataFrame:
    cols = [c for c in expand(keys, table) if c.header is not None]
    return pd.DataFrame([{c.header: c.text(it) for c in cols} for it in items],
                        columns=[c.header for c in cols])


def csv_frame(items: list, keys: tuple[str, ...], table: str | None = None) -> pd.DataFrame:
    cols = [c for c in expand(keys, table) if c.fields]
    frame = pd.DataFrame([{f: v for c in cols for f, v in zip(c.fields, c.numbers(it))}
                          for it in items], columns=[f for c in cols for f in c.fields])
    for c in cols:
        types = c.dtype if isinstance(c.dtype, tuple) else (c.dtype,) * len(c.fields)
        for f, t in zip(c.fields, types):
            if t == "bool":
                frame[f] = frame[f].fillna(False).astype(bool)
            elif t is not None:
                frame[f] = frame[f].astype(t)
    return frame


def legend(keys: tuple[str, ...]) -> str:
    """The legend lines of ``keys``' columns, in that order (suite lines joined as one)."""
    parts = []
    for key in keys:
        if key == "suites":
            lines = [c.legend for c in expand(("suites",)) if c.legend]
            if lines:
                parts.append("; ".join(lines) + ".")
        elif get_column(key).legend:
            parts.append(get_column(key).legend)
    return " ".join(parts)


# -- the columns of mi-bench's tables ------------------------------------------------------------
def _num(name: str) -> Callable[[Any], Any]:
    return lambda item: getattr(item, name)


for _column in (
    Column("rank", "rank", lambda it: (it.rank, it.rank_by), ("rank", "rank_by"),
           show=lambda it: it.rank_text, dtype=("Int64", None),
           legend="*rank*: for a **mi-bench** row, the place its adaptive number (at two "
                  "decimals) would take among the reliable RobustBench entries, ties going "
                  "behind (marked `(EOT-PGD)` where no AutoAttack record exists and EOT-PGD "
                  "stands in); RobustBench rows keep their own ranks, `—` for entries "
                  "RobustBench flags unreliable."),
    Column("rank_span", None, lambda it: it.rank_span, ("rank_best", "rank_worst"),
           dtype="Int64"),
    Column("source", "source", _num("source"), ("source",), show=lambda it: it.source_text),
    Column("model", "model", _num("model"), ("model",), show=lambda it: getattr(it, "model_text", it.model)),
    Column("defense", "defense", _num("defense"), ("defense",)),
    Column("N", "N", _num("forwards"), ("N",), show=lambda it: str(it.forwards), dtype="Int64",
           legend="*N*: base-model forward passes per prediction (1 + MI partners)."),
    Column("clean", "clean", _num("clean"), ("clean_mean", "clean_std"), ("mean", "std")),
    Column("clean_ci", None, _num("clean"), ("clean_ci_low", "clean_ci_high"),
           ("ci_low", "ci_high")),
    Column("worst", "worst over attacks", _num("worst"),
           ("worst_over_attacks_mean", "worst_over_attacks_ci_low",
            "worst_over_attacks_ci_high"), ("mean", "ci_low", "ci_high"),
           legend="*worst over attacks*: per image, the worst candidate (the clean image or "
                  "any attack run's point, all on the same images; a randomized defense's "
                  "chosen on one half of the scoring draws and read on the other, both ways), "
                  "then the mean (an upper bound where a column is `—`)."),
    Column("randomized", None, _num("randomized"), ("randomized",), dtype="bool"),
    Column("seeds", "seeds", _num("seeds"), ("seeds",), show=lambda it: it.seeds_text,
           dtype="Int64",
           legend="*seeds*: those of the adaptive column, the cell that ranks the row; a column "
                  "with more seeds shows their spread as ± and the notes name them."),
    Column("n", "n", _num("n"), ("n",), show=lambda it: getattr(it, "n_text", str(it.n)),
           dtype="Int64"),
    Column("eps", "eps", _num("eps"), ("eps",)),
    Column("norm", "norm", _num("norm"), ("norm",)),
    Column("dataset", None, _num("dataset"), ("dataset",)),
    Column("checkpoint_sha256", None, _num("sha256"), ("checkpoint_sha256",)),
    Column("notes", None, _num("notes"), ("notes",)),
    # the paired gains (items: gains.Gain)
    Column("where", "eps", lambda g: g.row.where),
    Column("gain_worst", "worst over attacks: defended − undefended", lambda g: g.robust_text),
    Column("gain_clean", "clean: defended − undefended", lambda g: g.clean_text),
    Column("gain_matched", "worst over attacks, same attacks", lambda g: g.matched_text),
    Column("verdict", "verdict (worst over attacks)", lambda g: g.verdict),
    # the console summary of ``mi-bench attack`` (items: one configured run's seeds)
    Column("suite_run", "suite", lambda r: r.suite_text),
    Column("eps_norm", "eps", lambda r: r.where),
    Column("clean_pct", "clean", lambda r: r.clean_text),
    Column("robust_seeds", "robust (mean ± std)", lambda r: r.robust_text),
    Column("worst_case", "worst case", lambda r: r.worst_case_text),
    Column("passes", "passes", lambda r: f"{r.forwards:,}"),
    Column("seconds", "seconds", lambda r: f"{r.seconds:.0f}"),
    Column("flags", "flags", lambda r: r.flags),
):
    register_column(_column)

CELLS_LEGEND = (
    "Cells are accuracy in percent: `mean [95% interval over images] ± std over seeds (worst "
    "case)`. The interval is a bootstrap over images of each image's share of correct (seed, "
    "draw) pairs, or Wilson's with one draw and one seed; a difference inside it is not a "
    "difference. The std is the sample std (ddof=1) of the per-seed accuracies, shown only with "
    "two or more seeds; the worst case counts an example as robust only if it is classified "
    "correctly, clean and attacked, in every evaluation draw of every seed.")

RANDOMIZED_NOTE = ("Not leaderboard entries: each rank is where the number would fall among the "
                   "deterministic entries above, with the range its 95% interval over images "
                   "spans.")
def ranked_legend() -> str:
    """The legend of the ranked table, from its columns' legend lines (read when rendered, so a
    registered suite or column is in it)."""
    return " ".join([CELLS_LEGEND, legend(("suites", "worst", "seeds", "N", "rank")),
                     "`—` in a number cell: not measured (never filled in)."])


def sweep_legend() -> str:
    return " ".join([CELLS_LEGEND, legend(("suites", "worst", "seeds", "N")),
                     "`—`: not measured."])
