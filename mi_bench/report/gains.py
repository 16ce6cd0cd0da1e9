"""What a defense changes on its model, paired over the same images.

Two rows' intervals can overlap while the defense still helps on the images both rows were
measured on, and two intervals that do not overlap still say less than the difference itself.
The gain here is per image: the defended row's score minus the undefended row's, for the worst
over attacks and for clean accuracy, with a bootstrap interval over images of that difference.
Only rows of one model, threat, eps and image set are paired, so every image meets itself.
A defended row that missed an attack its undefended row faced is compared against a stronger
set of attacks, so its positive difference is not called a gain; the difference against the
undefended row restricted to the attacks both rows faced is reported beside it, and is what a
gain is then called on, with the missing attacks named.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np

from mi_bench.intervals import bootstrap
from mi_bench.report.columns import suite_column
from mi_bench.report.rows import Row


@dataclass(frozen=True)
class Gain:
    row: Row
    base: Row
    robust: float  # mean per-image difference of worst-over-attacks scores, in [-1, 1]
    robust_ci: tuple[float, float]
    clean: float
    clean_ci: tuple[float, float]
    # the same difference with the undefended row's runs limited to the attacks both rows faced
    # (equal to ``robust`` when nothing is unmatched; None when no such run is left)
    matched: float | None = None
    matched_ci: tuple[float, float] | None = None

    @property
    def unmatched(self) -> tuple[str, ...]:
        """The columns the undefended row has and the defended one lacks, and within a shared
        column the attacks (AutoAttack's members) the undefended row faced and it did not."""
        out = [suite_column(s) for s in sorted(set(self.base.cells) - set(self.row.cells))]
        for s in sorted(set(self.base.cells) & set(self.row.cells)):
            lack = sorted(self.base.cells[s].attacks - self.row.cells[s].attacks)
            if lack:
                out.append(f"{'/'.join(a.upper() for a in lack)} in {suite_column(s)}")
        return tuple(out)

    # what the table's columns (``columns.py``) read
    @property
    def model(self) -> str:
        return self.row.model

    @property
    def defense(self) -> str:
        return self.row.defense_label

    @property
    def n(self) -> int:
        return self.row.image_set[0]

    @property
    def robust_text(self) -> str:
        return _signed(self.robust, self.robust_ci)

    @property
    def clean_text(self) -> str:
        return _signed(self.clean, self.clean_ci)

    @property
    def matched_text(self) -> str:
        return "—" if self.matched is None else _signed(self.matched, self.matched_ci)

    @property
    def verdict(self) -> str:
        lo, hi = self.robust_ci
        if hi < 0:
            return "loss"  # more attacks on the defended row could only widen it
        if not self.unmatched:
            return "gain" if lo > 0 else "no difference shown"
        missing = f"no {', '.join(self.unmatched)} on the defended row"
        if self.matched_ci is not None and self.matched_ci[0] > 0:
            return f"gain against the attacks both rows faced ({missing})"
        if self.matched_ci is not None and self.matched_ci[1] < 0:
            return f"loss against the attacks both rows faced ({missing})"
        return f"not shown: {missing}" if lo > 0 else "no difference shown"


def _clean_scores(row: Row) -> np.ndarray | None:
    main = row.main_cell
    return None if main is None or main.scores is None else main.scores["clean"]


def paired_gains(rows: list[Row]) -> list[Gain]:
    """Every defended row against the undefended row of its model, eps and image set."""
    worst = {id(r): r.worst_scores for r in rows}  # one stack of the row's runs each
    bases = {(r.model, r.norm, r.eps_label, r.image_set): r for r in rows
             if r.undefended and worst[id(r)] is not None}
    gains = []
    for row in rows:
        if row.undefended or worst[id(row)] is None:
            continue
        base = bases.get((row.model, row.norm, row.eps_label, row.image_set))
        if base is None:
            continue
        robust = worst[id(row)] - worst[id(base)]
        clean_row, clean_base = _clean_scores(row), _clean_scores(base)
        clean = clean_row - clean_base if clean_row is not None and clean_base is not None \
            else np.full_like(robust, np.nan)
        gain = Gain(row, base, float(robust.mean()), bootstrap(robust, bounds=(-1, 1)),
                    float(clean.mean()), bootstrap(clean, bounds=(-1, 1)))
        gains.append(_with_matched(gain, worst[id(row)]))
    return gains


def _with_matched(gain: Gain, worst_row: np.ndarray) -> Gain:
    """The gain with the undefended row read against the attacks the defended row faced."""
    if not gain.unmatched:
        return replace(gain, matched=gain.robust, matched_ci=gain.robust_ci)
    faced = {s: c.attacks for s, c in gain.row.cells.items()}
    if not any(r["attacks"] <= faced.get(s, set())
               for s, c in gain.base.cells.items() for r in c.all_robust):
        return gain  # the undefended row has no run of a shared attack
    d = worst_row - gain.base.worst_scores_within(faced)
    return replace(gain, matched=float(d.mean()), matched_ci=bootstrap(d, bounds=(-1, 1)))


def _signed(x: float, ci: tuple[float, float]) -> str:
    if np.isnan(x):
        return "—"
    return f"{100 * x:+.2f} [{100 * ci[0]:+.1f}, {100 * ci[1]:+.1f}]"


# the paired table's columns (``columns.py``), in the Markdown and HTML tables alike
GAINS_MD = ("model", "defense", "where", "n", "gain_worst", "gain_matched", "gain_clean",
            "verdict")

GAINS_NOTE = (
    "Per image, the defended row's score minus the undefended row's on the same images (worst "
    "over attacks; clean), in percentage points, with a 95% bootstrap interval over images of "
    "that difference. *gain* or *loss* only where the interval excludes 0, and a gain only where "
    "the defended row faced every attack the undefended one did; where it did not, *same "
    "attacks* reads the undefended row against only the attacks the defended row faced, and the "
    "verdict names the attacks missing.")
