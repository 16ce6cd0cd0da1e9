"""Scaling: one process with T threads against T torchrun ranks with one thread each.

The same attack (``mi-bench attack``, EOT-PGD through MI-OL on the shipped mixup checkpoint by
default) runs in a fresh store as ``python -m mi_bench.cli attack ...`` with
``OMP_NUM_THREADS=T`` and as ``python -m torch.distributed.run --nproc-per-node T -m mi_bench.cli
attack ...`` with ``OMP_NUM_THREADS=1``, in interleaved rounds. Passes per second are the
record's forward + backward base-model passes over the command's wall time:

- gross: the whole command, start-up included;
- net: minus the wall time of the same command rerun on the finished store (which starts,
  loads the model, data and pool, joins the ranks, finds the record and stops), i.e. the attack.

A third arm, one process with one thread, shows what the second rank adds on its own. Prints
per round and the medians of the per-round ratios ranks/single, and whether the records are
equal (they should be: the per-(seed, batch) random streams make the batches
independent of who runs them; thread counts can still change float rounding).

    python benchmarks/scaling.py [--threads 2] [--repeats 3] [--n 16] [--batch-size 4]
        [--steps 40] [--eot-iter 4] [--k 4] [--mi-n 10] [--checkpoint mixup]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def run(cmd: list[str], threads: int) -> float:
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    t0 = time.perf_counter()
    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
    seconds = time.perf_counter() - t0
    if done.returncode != 0:
        sys.exit(f"failed: {' '.join(cmd)}\n{done.stderr[-3000:]}")
    return seconds


def record(store: Path) -> tuple[dict, dict]:
    (path,) = (store / "records").glob("*.json")
    with np.load(path.with_suffix(".npz")) as z:
        return json.loads(path.read_text()), {k: z[k] for k in z.files}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--threads", type=int, default=2, help="T: threads of one process = ranks")
    p.add_argument("--repeats", type=int, default=3, help="interleaved rounds")
    p.add_argument("--checkpoint", default="mixup")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--steps", type=int, default=40)
    p.add_argument("--eot-iter", type=int, default=4)
    p.add_argument("--k", type=int, default=4, help="MI partners inside the attack")
    p.add_argument("--mi-n", type=int, default=10)
    args = p.parse_args()
    attack = ["attack", "--checkpoint", args.checkpoint, "--suite", "eot-pgd", "--steps",
              str(args.steps), "--eot-iter", str(args.eot_iter), "--attack-mi-samples",
              str(args.k), "--mi-n", str(args.mi_n), "--n-examples", str(args.n), "--batch-size",
              str(args.batch_size), "--eval-repeats", "2", "--no-sanity", "--no-progress",
              "--device", "cpu"]
    single = [sys.executable, "-m", "mi_bench.cli", *attack]
    ranks = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node",
             str(args.threads), "-m", "mi_bench.cli", *attack]
    print(f"{os.cpu_count()} CPUs; EOT-PGD {args.steps} steps, EOT {args.eot_iter}, K {args.k}, "
          f"MI-OL N {args.mi_n}, {args.n} images in batches of {args.batch_size}, "
          f"{args.checkpoint}; 1 process x {args.threads} threads vs {args.threads} ranks x 1 "
          "thread", flush=True)
    rounds, same = [], True
    with tempfile.TemporaryDirectory() as tmp:
        for r in range(args.repeats):
            row = {}
            order = [("single", single, args.threads), ("ranks", ranks, 1), ("one", single, 1)]
            for name, cmd, threads in order[r % 3:] + order[:r % 3]:
                store = Path(tmp) / f"{name}{r}"
                gross = run([*cmd, "--out", str(store)], threads)
                startup = run([*cmd, "--out", str(store)], threads)  # finds the record, stops
                rec, examples = record(store)
                passes = rec["forwards"] + rec["backwards"]
                row[name] = {"gross": passes / gross, "net": passes / max(gross - startup, 1e-9),
                             "seconds": gross, "startup": startup, "rec": rec, "ex": examples}
            a, b, c = row["single"], row["ranks"], row["one"]
            same &= all(a["rec"]["key"] == o["rec"]["key"] and all(
                np.array_equal(a["ex"][k], o["ex"][k]) for k in a["ex"]) for o in (b, c))
            print(f"round {r + 1}: single {a['gross']:,.0f} passes/s gross, {a['net']:,.0f} net "
                  f"({a['seconds']:.1f} s, start-up {a['startup']:.1f} s); ranks {b['gross']:,.0f}"
                  f" gross, {b['net']:,.0f} net ({b['seconds']:.1f} s, start-up "
                  f"{b['startup']:.1f} s); 1 thread {c['gross']:,.0f} gross, {c['net']:,.0f} net "
                  f"({c['seconds']:.1f} s)", flush=True)
            rounds.append(row)
    for kind in ("gross", "net"):
        ratio = statistics.median(r["ranks"][kind] / r["single"][kind] for r in rounds)
        one = statistics.median(r["ranks"][kind] / r["one"][kind] for r in rounds)
        print(f"{kind}: {args.threads} ranks / 1 process x {args.threads} threads = {ratio:.2f}; "
              f"{args.threads} ranks / 1 process x 1 thread = {one:.2f} (passes per second, "
              f"medians of {len(rounds)} rounds)")
    print(f"records equal (key, per-example arrays): {'yes' if same else 'no'}")


if __name__ == "__main__":
    main()
