"""Print the K table of issue #18 from a result store: per (row, suite, K) the held-out robust
accuracy (scoring draws) with its 95% interval over images, and the passes and seconds each
image cost::

    python leaderboards/k_table.py leaderboards/results/k_table/store
"""

from __future__ import annotations

import argparse

from mi_bench.intervals import interval
from mi_bench.report.cells import example_scores
from mi_bench.report.rows import read_records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    a = ap.parse_args()
    store, records = read_records(a.store)
    if not records:
        raise SystemExit(f"error: no current-protocol records in {a.store}")
    print("| model + defense | attack | K | n | robust (held out) [95%] | passes per image | "
          "seconds per image |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    key = (lambda r: (r["checkpoint"], r["defense"], r["suite"], r.get("attack_draws") or 0))
    for r in sorted(records, key=key):
        scores, problems = example_scores(store, [r])
        if scores is None:
            print(f"<!-- {problems} -->")
            continue
        lo, hi = interval(scores["robust"])
        attack = r["suite"] if r["suite"] != "autoattack" else "ensemble"
        if r["suite"] == "eot-pgd":
            attack = f"EOT-PGD-{r['attack']['steps']} ({r['attack']['loss']}, EOT " \
                     f"{r['attack']['eot_iter']})"
        passes = (r["forwards"] + r["backwards"]) / r["n"]
        print(f"| {r['checkpoint']} + {r['defense']} | {attack} | {r.get('attack_draws')} | "
              f"{r['n']} | {100 * r['robust_acc']:.1f} [{100 * lo:.1f}, {100 * hi:.1f}] | "
              f"{passes:,.0f} | {r['seconds'] / r['n']:.2f} |")


if __name__ == "__main__":
    main()
