"""Cost of the AutoAttack ensemble for randomized defenses against the published ``rand``.

Both attack the same images of one checkpoint + defense at the same EOT and K, in one run, and
the script prints base-model passes per image and seconds per image for each, with the ratio.
Usage: python benchmarks/aa_ensemble.py [--checkpoint iat] [--defense mi-ol] [--n 16]
       [--eot 5] [--data-dir ../shared/data]
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
    ap.add_argument("--n", type=int, default=16)
    ap.add_argument("--eot", type=int, default=5)
    ap.add_argument("--data-dir", default=None)
    args = ap.parse_args()
    common = {"checkpoint": args.checkpoint, "defense": args.defense, "n": args.n,
              "eot": args.eot, "data_dir": args.data_dir}
    with tempfile.TemporaryDirectory() as tmp:
        rows = [measure(ResultStore(tmp), version=v, **common) for v in ("rand", "ensemble")]
    print(f"{args.checkpoint} + {args.defense}, 8/255, {args.n} images, EOT {args.eot}, K = 1")
    for r in rows:
        print(f"  {r['version']:<9} robust {100 * r['robust']:5.1f}%  "
              f"{r['passes_per_image']:>9,.0f} passes/image  {r['seconds_per_image']:7.2f} s/image")
    a, b = rows
    print(f"  ensemble / rand: {b['passes_per_image'] / a['passes_per_image']:.2f}x passes, "
          f"{b['seconds_per_image'] / a['seconds_per_image']:.2f}x seconds")


if __name__ == "__main__":
    main()
