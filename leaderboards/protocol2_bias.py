"""How biased the protocol-2 numbers were: re-read the archived arrays of one row, choosing
per image on some draws and scoring on the others (issue #18's review, reproduced)::

    python leaderboards/protocol2_bias.py leaderboards/results/archive/protocol2/headline-store \
        --checkpoint prn18w16-iat-s0 --defense mi-ol --eps 8/255

Protocol 2 took, per image, the lowest 5-draw mean over every run of the row and reported it
(on ``adv & clean`` of independent clean and adversarial draws). Here each run's per-image
score is ``adv`` at the kept candidate (the clean image or the run's point, the lower on the
choosing draws), the run is chosen on draws ``--select`` and read on the rest. An ensemble
record's points were themselves chosen on all its draws (protocol 2), so no re-reading frees it
of that; with two choosing draws many runs tie, and which run a tie goes to moves the figure:
both orders are printed, and only a protocol-3 run answers the question.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from mi_bench.attacks.draws import worst_scores
from mi_bench.intervals import bootstrap
from mi_bench.results import ResultStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--checkpoint", required=True)
    ap.add_argument("--defense", required=True)
    ap.add_argument("--eps", default="8/255")
    ap.add_argument("--select", default="0,1", help="draws that choose (the rest score)")
    a = ap.parse_args()
    store = ResultStore(a.store)
    recs = [json.loads(p.read_text()) for p in sorted(Path(a.store, "records").glob("*.json"))]
    recs = [r for r in recs if r["checkpoint"] == a.checkpoint and r["defense"] == a.defense
            and r.get("eps_label") == a.eps]
    if not recs:
        raise SystemExit(f"error: no records of {a.checkpoint} + {a.defense} at {a.eps}")
    sel = [int(i) for i in a.select.split(",")]
    print(f"{len(recs)} runs of {a.checkpoint} + {a.defense} at {a.eps}")
    for label, first in (("ensemble runs first", True), ("ensemble runs last", False)):
        order = sorted(recs, key=lambda r: (bool(r.get("ensemble")) != first, r["key"]))
        ex = [store.load_examples(r["key"]) for r in order]
        rest = [i for i in range(ex[0]["adv"].shape[0]) if i not in sel]
        same = np.min(np.stack([(e["adv"] & e["clean"]).mean(0) for e in ex]), axis=0)
        # candidates: the clean image (its own draws) and every run's point
        select = [ex[0]["clean"][sel].mean(0)] + [e["adv"][sel].mean(0) for e in ex]
        score = [ex[0]["clean"][rest].mean(0)] + [e["adv"][rest].mean(0) for e in ex]
        held = worst_scores(np.stack(select), np.stack(score))
        lo, hi = bootstrap(held)
        if first:
            print(f"protocol 2 (per image the minimum over runs, on the draws that chose it): "
                  f"{100 * same.mean():.2f}")
        print(f"chosen on draws {sel}, read on draws {rest}, ties to the {label}: "
              f"{100 * held.mean():.2f} [{100 * lo:.1f}, {100 * hi:.1f}]")

if __name__ == "__main__":
    main()
