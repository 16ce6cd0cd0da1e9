"""Print the convergence table of the AutoAttack ensemble on one row, from a result store.

Every ensemble record of the row (one knob pushed per record, as the ``convergence-*`` grids of
``sweep.toml`` run them) with its interval over images, its paired difference against the first
(the base setting the knobs are pushed from) and each member's wins, then the row's worst over
every record (all suites), held out as the report's: per image chosen on one half of the
scoring draws and read on the other (``held_out_worst``)::

    python leaderboards/convergence_table.py leaderboards/results/store \
        --checkpoint prn18w16-iat-s0 --defense mi-ol --eps 8/255
"""

from __future__ import annotations

import argparse

import numpy as np

from mi_bench.intervals import interval, paired_points
from mi_bench.report.cells import example_scores
from mi_bench.report.rows import collect_rows, read_records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--defense", required=True)
    ap.add_argument("--eps", default="8/255")
    a = ap.parse_args()
    store, records = read_records(a.store)
    row = [r for r in records if a.checkpoint in str(r["checkpoint"]) and
           r["defense"] == a.defense and r.get("eps_label") == a.eps]
    if not row:
        raise SystemExit(f"error: no records of {a.checkpoint} + {a.defense} at {a.eps}")
    rows = collect_rows(store, row)  # the report's row: its worst over every record
    if len(rows) != 1:
        raise SystemExit(f"error: the records match {len(rows)} rows; name the checkpoint "
                         "(and defense settings) of one")
    (whole,) = rows
    ensembles = [r for r in row if r.get("ensemble")]
    if not ensembles:
        raise SystemExit("error: the row has no record of the AutoAttack ensemble")
    runs = []
    for r in sorted(ensembles, key=lambda r: str(r.get("created"))):
        scores, _ = example_scores(store, [r])
        if scores is not None:
            runs.append((r, scores["robust"]))
    for line in _table(runs):
        print(line)
    mean, (lo, hi) = whole.worst_over_attacks
    print(f"| per image, the held-out worst over all {len(row)} records of the row | "
          f"{whole.image_set[0]} | {100 * mean:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | | |")


def _table(runs: list[tuple[dict, np.ndarray]]) -> list[str]:
    """One line per ensemble record (its scoring-draw robust score per image), each paired
    against the first, the base setting the grids push one knob from, on the same images."""
    if not runs:
        return []
    members = " / ".join(runs[0][0]["ensemble"])
    lines = [(f"| ensemble setting | n | robust [95% interval] | minus the first setting "
             f"[95%, paired] | wins: {members} |"), "| --- | --- | --- | --- | --- |"]
    base = runs[0][1]
    for i, (r, robust) in enumerate(runs):
        at = r["attack"]
        lo, hi = interval(robust)
        setting = (f"EOT {at['eot_iter']}, {at['n_iter']} iterations, K {r['attack_draws']}, "
                   f"{at['restarts']} restart(s)")
        diff = "-" if i == 0 or robust.shape != base.shape else paired_points(robust - base)
        wins = " / ".join(str(m["wins"]) for m in r["ensemble"].values())
        lines.append(f"| {setting} | {r['n']} | {100 * robust.mean():.1f} "
                     f"[{100 * lo:.1f}, {100 * hi:.1f}] | {diff} | {wins} |")
    return lines


if __name__ == "__main__":
    main()
