"""Print the binarization-test table of a result store: one line per (model, defense, inner
attack) record, with the preset its task follows, the attack success rate, its 95% interval, the
verdict and the cost::

    python leaderboards/binarization_table.py leaderboards/results/binarization/store
"""

from __future__ import annotations

import argparse

import pandas as pd

from mi_bench.attacks.binarization import PRESETS
from mi_bench.attacks.binarization_run import summary_row
from mi_bench.results import ResultStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    a = ap.parse_args()
    records = [r for r in ResultStore(a.store).records() if r.get("suite") == "binarization"]
    if not records:
        raise SystemExit(f"error: no binarization records in {a.store}")
    order = {"pgd": 0, "eot-pgd": 1, "autoattack": 2}
    records.sort(key=lambda r: (r["checkpoint"], r["defense"], order.get(r["inner_suite"], 9),
                                str(r.get("attack"))))
    rows = []
    for r in records:
        row = summary_row(r)
        if r["inner_suite"] == "eot-pgd" and (r.get("attack") or {}).get("steps") == 50:
            row["inner attack"] = "eot-pgd (Tramèr preset)"
        elif r["inner_suite"] == "eot-pgd":
            a = r.get("attack") or {}
            row["inner attack"] = (f"eot-pgd-{a.get('steps')} ({a.get('loss')}, "
                                   f"EOT {a.get('eot_iter')}, K {r.get('attack_draws')})")
        elif r["inner_suite"] == "autoattack":
            a = r.get("attack") or {}
            row["inner attack"] = (f"autoattack ({a.get('version')}, EOT {a.get('eot_iter')}, "
                                   f"K {r.get('attack_draws')})")
        elif r["inner_suite"] == "pgd":
            row["inner attack"] = "pgd (oblivious)"
        task = r.get("binarization") or {}
        c = task.get("c", 1.0)
        if c != 1.0:
            row["inner attack"] += f", readout C {c:g}"
        row = {"preset": _preset(task), **row}
        rows.append(row)
    print(pd.DataFrame(rows).to_markdown(index=False))


def _preset(task: dict) -> str:
    """The preset whose task settings the record's match (``custom`` if none)."""
    return next((name for name, p in PRESETS.items()
                 if all(task.get(k) == v for k, v in p["settings"].items())), "custom")


if __name__ == "__main__":
    main()
