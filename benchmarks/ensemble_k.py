"""Cost of attacking the defense as deployed: the AutoAttack ensemble with K partners inside
every attack forward against K = 1, on the same images, in one run (issue #18).

Prints base-model passes and seconds per image for each K, the held-out robust accuracy each
reads (scoring draws), and the ratios. Usage: python benchmarks/ensemble_k.py [--checkpoint iat]
[--defense mi-ol] [--n 4] [--k 15] [--eot 5] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import tempfile
import time

from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.results import ResultStore


def measure(k: int, args, store: ResultStore) -> dict:
    cfg = AttackConfig(checkpoint=args.checkpoint, defense=args.defense, suite="autoattack",
                       aa_version="ensemble", eps=8 / 255, eps_label="8/255", n_examples=args.n,
                       batch_size=args.n, eval_repeats=5, eot_iter=args.eot, attack_draws=k,
                       data_dir=args.data_dir, sanity=False)
    run = AttackRun(cfg, store, progress=False, log=lambda m: None)
    t0 = time.perf_counter()
    rec = run.run_seed(0)
    wall = time.perf_counter() - t0
    return {"k": k, "robust": rec["robust_acc"],
            "passes_per_image": (rec["forwards"] + rec["backwards"]) / args.n,
            "seconds_per_image": wall / args.n}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="iat")
    ap.add_argument("--defense", default="mi-ol")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--eot", type=int, default=5)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(k, args, ResultStore(tmp)) for k in (1, args.k)]
    print(f"{args.checkpoint} + {args.defense}, 8/255, the ensemble (EOT {args.eot}), "
          f"{args.n} images")
    for r in rows:
        print(f"  K = {r['k']:<3} robust {100 * r['robust']:5.1f}% (held out)  "
              f"{r['passes_per_image']:>9,.0f} passes/image  {r['seconds_per_image']:7.2f} s/image")
    a, b = rows
    print(f"  K = {args.k} / K = 1: {b['passes_per_image'] / a['passes_per_image']:.2f}x passes, "
          f"{b['seconds_per_image'] / a['seconds_per_image']:.2f}x seconds")


if __name__ == "__main__":
    main()
