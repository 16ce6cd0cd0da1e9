"""Cost of attacking the defense as deployed: the AutoAttack ensemble with K partners inside
every attack forward against K = 1, on the same images, in one run (issue #18).

Prints base-model passes and seconds per image for each K, the held-out robust accuracy each
reads (scoring draws), and the ratios. Usage: python benchmarks/ensemble_k.py [--checkpoint iat]
[--defense mi-ol] [--n 4] [--k 15] [--eot 5] [--data-dir ../shared/data]
"""

from __future__ import annotations

import argparse
import tempfile

from _autoattack import measure

from mi_bench.results import ResultStore


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--checkpoint", default="iat")
    ap.add_argument("--defense", default="mi-ol")
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--k", type=int, default=15)
    ap.add_argument("--eot", type=int, default=5)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    common = {"checkpoint": args.checkpoint, "defense": args.defense, "n": args.n,
              "eot": args.eot, "data_dir": args.data_dir}
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(ResultStore(tmp), k=k, **common) for k in (1, args.k)]
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
