"""AutoAttack on the CPU and on CUDA, same images, same seed: the records must agree.

Runs the harness's AutoAttack (``rand`` through MI-OL with K = 1 attack partner, N = 30 at
evaluation, on the shipped mixup checkpoint by default) on the first n test images, once per
device, each into its own store, in fp32. Prints both runs' accuracies, passes per second and
the per-example agreement; exits 1 if the per-example results differ. Both runs share one record
key: the device is not part of a record's identity.

    python benchmarks/aa_devices.py [--n 16] [--checkpoint mixup] [--devices cpu,cuda]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time

import numpy as np
import torch

from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.device import describe, set_precision
from mi_bench.results import ResultStore


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--checkpoint", default="mixup")
    p.add_argument("--devices", default="cpu,cuda")
    p.add_argument("--data-dir", default=None)
    args = p.parse_args()
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for i, name in enumerate(args.devices.split(",")):
            device = torch.device(name)
            set_precision(device)
            cfg = AttackConfig(checkpoint=args.checkpoint, defense="mi-ol", suite="autoattack",
                               n_examples=args.n, batch_size=args.n, eval_repeats=2,
                               attack_draws=1, data_dir=args.data_dir, sanity=False)
            store = ResultStore(f"{tmp}/{i}")
            t0 = time.perf_counter()
            rec = AttackRun(cfg, store, progress=False, log=lambda m: None,
                            device=device).run_seed(0)
            seconds = time.perf_counter() - t0
            runs.append((rec, store.load_examples(rec["key"]), seconds))
            passes = rec["forwards"] + rec["backwards"]
            print(f"{describe(device)}: AutoAttack {rec['attack']['version']} through MI-OL "
                  f"(K 1, N 30), {args.n} images: clean {rec['clean_acc']:.1%}, robust "
                  f"{rec['robust_acc']:.1%}, AutoAttack's own {rec['autoattack_own_acc']:.1%}; "
                  f"{passes:,} passes in {seconds:.1f} s ({passes / seconds:,.0f} passes/s); "
                  f"record {rec['key']}", flush=True)
    (ra, ea, ta), (rb, eb, tb) = runs
    same_key = ra["key"] == rb["key"]
    agree = {k: int((ea[k] == eb[k]).all(0).sum()) for k in ("clean", "adv")}
    print(f"same record key: {same_key}; examples agreeing in every draw: clean "
          f"{agree['clean']}/{args.n}, adversarial {agree['adv']}/{args.n}; speed-up "
          f"{ta / tb:.1f}x")
    ok = same_key and all(np.array_equal(ea[k], eb[k]) for k in ("clean", "adv"))
    print("AGREE" if ok else "DISAGREE")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
