"""Does the harness report pyautoattack's own number? Runs AutoAttack `standard` on the example
ResNet-18 that ships with pyautoattack twice: through `mi-bench attack` (one record in a result
store) and directly through pyautoattack, with the seed the harness hands pyautoattack, on the
same first n test images. Writes both numbers and the per-example agreement as JSON.

Usage: python leaderboards/direct_autoattack.py --data-dir ../shared/data --eps 2/255 --n 20 \
           --store leaderboards/results/sweeps/store --out leaderboards/results/direct_autoattack.json
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from mi_bench.attacks.runner import AttackConfig, AttackRun, batch_seeds
from mi_bench.data import load_split
from mi_bench.models.zoo import load_classifier
from mi_bench.options import parse_eps
from mi_bench.results import ResultStore, atomic_write_text, package_versions


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", default=None)
    ap.add_argument("--eps", default="2/255")
    ap.add_argument("--n", type=int, default=32)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--store", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    from pyautoattack import AutoAttack

    eps = parse_eps(args.eps)
    name = "autoattack-resnet18"
    cfg = AttackConfig(checkpoint=name, defense="none", suite="autoattack", eps=eps,
                       eps_label=args.eps, n_examples=args.n, batch_size=args.n, eval_repeats=1,
                       seeds=[args.seed], data_dir=args.data_dir, aa_version="standard")
    store = ResultStore(args.store)
    t0 = time.time()
    rec = AttackRun(cfg, store, progress=False).run_seed(args.seed)
    harness_s = time.time() - t0
    harness = store.load_examples(rec["key"])
    harness_robust = harness["adv"].all(0)  # the kept candidate: clean image or point

    model, _ = load_classifier(name)
    test = load_split("cifar10", "test", args.data_dir).head(args.n)
    x, y = test.float_images(0, args.n), test.labels[: args.n]
    aa_seed = batch_seeds(args.seed, 0)["attack"]  # one batch: the harness's only AA seed
    t0 = time.time()
    aa = AutoAttack(model, norm="Linf", eps=eps, version="standard", seed=aa_seed, device="cpu")
    x_adv, _ = aa.run_standard_evaluation(x, y, batch_size=args.n)
    direct_s = time.time() - t0
    with torch.no_grad():
        direct_robust = (model(x_adv).argmax(1) == y).numpy()
    out = {
        "model": name, "eps": args.eps, "n": args.n, "seed": args.seed,
        "pyautoattack_seed": aa_seed, "version": "standard", "record": rec["key"],
        "harness_robust_acc": rec["robust_acc"], "direct_robust_acc": float(direct_robust.mean()),
        "harness_clean_acc": rec["clean_acc"],
        "examples_that_agree": int((harness_robust == direct_robust).sum()),
        "equal": bool(np.array_equal(harness_robust, direct_robust)),
        "harness_seconds": round(harness_s, 1), "direct_seconds": round(direct_s, 1),
        "data": rec["data"], "versions": package_versions(),
    }
    atomic_write_text(Path(args.out), json.dumps(out, indent=1) + "\n")
    print(json.dumps(out, indent=1))
    if not out["equal"]:
        raise SystemExit("the harness and the direct run disagree")


if __name__ == "__main__":
    main()
