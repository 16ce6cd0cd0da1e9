"""One measured AutoAttack run, shared by the benchmarks that compare two of them side by side."""

from __future__ import annotations

import time

from mi_bench.attacks.runner import AttackConfig, AttackRun
from mi_bench.results import ResultStore


def measure(store: ResultStore, *, checkpoint: str, defense: str, n: int, eot: int,
            version: str = "ensemble", k: int = 1, data_dir: str | None = None) -> dict:
    """Attack the first n test images once (seed 0) and return the held-out robust accuracy,
    base-model passes per image and wall seconds per image."""
    cfg = AttackConfig(checkpoint=checkpoint, defense=defense, suite="autoattack",
                       aa_version=version, eps=8 / 255, eps_label="8/255", n_examples=n,
                       batch_size=n, eval_repeats=5, eot_iter=eot, attack_draws=k,
                       data_dir=data_dir, sanity=False)
    run = AttackRun(cfg, store, progress=False, log=lambda m: None)
    t0 = time.perf_counter()
    rec = run.run_seed(0)
    wall = time.perf_counter() - t0
    return {"version": version, "k": k, "robust": rec["robust_acc"],
            "passes_per_image": (rec["forwards"] + rec["backwards"]) / n,
            "seconds_per_image": wall / n}
