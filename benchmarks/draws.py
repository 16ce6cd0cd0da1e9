"""How many selection draws S and scoring draws R: variance against cost, measured on records.

For each randomized record given (its ``adv`` scoring draws), the standard error over images of
the robust accuracy splits into a part from the images and a part from the draws:
``Var = (Var_i(p_i) + E_i[p_i (1 - p_i)] / R) / n``, with p_i(1 - p_i) estimated without bias
from the record's R draws. The table prints the standard error and the draws' share of the
variance for several R, beside the evaluation's cost per image and candidate, (S + R) x the
defense's passes per prediction.

For S it pairs the two strongest records of different suites of one row (two attacks on the
same images) and asks how often a
choice on S draws keeps the candidate that is truly lower, taking each record's per-image mean
as the truth, and what the worse choices cost the robust number (percentage points).

Last, for the worst over attacks (``held_out_worst``: cross-fitted on even and odd scoring
draws), a synthetic row of ten like runs of a known per-image accuracy: the bias and spread of
the row's number over trials, against leave-one-out cross-fitting (choose on R - 1 draws, read
the one left out) and against the choice on the draws read (the biased minimum)::

    python benchmarks/draws.py STORE --row prn18w16-iat-s0 mi-ol 8/255
"""

from __future__ import annotations

import argparse

import numpy as np

from mi_bench.attacks.draws import held_out_worst, worst_scores
from mi_bench.results import ResultStore


def split(adv: np.ndarray, repeats: list[int]) -> list[tuple[int, float, float]]:
    """(R, standard error over images, the draws' share of the variance) for each R."""
    a = np.asarray(adv, float)
    r, n = a.shape
    p = a.mean(0)
    within = float(np.mean(p * (1 - p)) * r / (r - 1))  # unbiased E[p(1-p)]
    between = max(float(p.var()) - within / r, 0.0)
    out = []
    for rr in repeats:
        total = between + within / rr
        out.append((rr, float(np.sqrt(total / n)), within / rr / total if total else 0.0))
    return out


def selection(p_a: np.ndarray, p_b: np.ndarray, draws: list[int], trials: int = 2000,
              seed: int = 0) -> list[tuple[int, float, float]]:
    """(S, share of images where S draws keep the truly lower candidate, excess in points)."""
    rng = np.random.default_rng(seed)
    differ = p_a != p_b
    low = np.minimum(p_a, p_b)
    out = []
    for s in draws:
        a = rng.binomial(s, p_a, size=(trials, len(p_a))) / s
        b = rng.binomial(s, p_b, size=(trials, len(p_b))) / s
        kept = np.where(b < a, p_b, p_a)  # ties keep the first, as keep_worst does
        right = (kept == low)[:, differ].mean() if differ.any() else 1.0
        out.append((s, float(right), float(100 * (kept.mean(1) - low.mean()).mean())))
    return out


def leave_one_out(candidates: list[np.ndarray]) -> np.ndarray:
    """Per draw j, choose per image on every candidate's other draws and read draw j."""
    draws = [np.asarray(c, float) for c in candidates]
    r = min(len(d) for d in draws)
    total = 0.0
    for j in range(r):
        keep = [i for i in range(r) if i != j]
        total = total + worst_scores(np.stack([d[keep].mean(0) for d in draws]),
                                     np.stack([d[j] for d in draws]))
    return total / r


def cross_fit(n: int = 200, runs: int = 10, r: int = 5, trials: int = 300,
              seed: int = 0) -> list[tuple[str, float, float]]:
    """(method, mean error in points, spread over trials in points) on ten like runs."""
    rng = np.random.default_rng(seed)
    p = np.linspace(0.2, 0.8, n)
    errors: dict[str, list[float]] = {"halves (held_out_worst)": [], "leave-one-out": [],
                                      "on the draws read (biased)": []}
    for _ in range(trials):
        clean = rng.random((r, n)) < np.minimum(p + 0.2, 1.0)
        cands = [clean, *(rng.random((r, n)) < p for _ in range(runs))]
        means = np.stack([c.mean(0) for c in cands])
        for name, value in zip(errors, (held_out_worst(cands), leave_one_out(cands),
                                        worst_scores(means, means))):
            errors[name].append(100 * (float(np.mean(value)) - float(p.mean())))
    return [(k, float(np.mean(v)), float(np.std(v))) for k, v in errors.items()]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--row", nargs=3, metavar=("CHECKPOINT", "DEFENSE", "EPS"), required=True)
    ap.add_argument("--passes", type=int, default=32, help="passes per prediction (MI: N + 2)")
    a = ap.parse_args()
    store = ResultStore(a.store)
    recs = [r for r in store.records() if r["checkpoint"] == a.row[0]
            and r["defense"] == a.row[1] and r.get("eps_label") == a.row[2]
            and r.get("defense_randomized", True)]
    if not recs:
        raise SystemExit(f"error: no randomized records of {' '.join(a.row)} in {a.store}")
    print("| record | suite | seed | R | se over images (points) | draws' share of variance |")
    print("| --- | --- | --- | --- | --- | --- |")
    means = {}
    for r in sorted(recs, key=lambda r: (r["suite"], r["seed"])):
        adv = store.load_examples(r["key"])["adv"]
        if adv.shape[0] < 2:
            continue
        means[(r["suite"], r["seed"])] = adv.mean(0)
        for rr, se, share in split(adv, [1, 2, 5, 10, 20]):
            print(f"| {r['key']} | {r['suite']} | {r['seed']} | {rr} | {100 * se:.2f} | "
                  f"{share:.2f} |")
    # the two strongest attacks of different suites: the choice that matters most
    ranked = sorted(means, key=lambda k: means[k].mean())
    pairs = [k for i, k in enumerate(ranked) if all(k[0] != j[0] for j in ranked[:i])][:2]
    if len(pairs) == 2:
        (ka, pa), (kb, pb) = ((k, means[k]) for k in pairs)
        print(f"\nchoosing per image between {ka} and {kb} on S draws:")
        print("| S | share kept right where they differ | excess over the true minimum "
              "(points) | evaluation passes per image and candidate (S + 5 scoring) |")
        print("| --- | --- | --- | --- |")
        for s, right, excess in selection(pa, pb, [1, 2, 4, 8, 16]):
            print(f"| {s} | {right:.2f} | {excess:+.2f} | {(s + 5) * a.passes} |")
    rows = cross_fit()
    print("\nworst over ten like runs (synthetic, 200 images, R = 5, 300 trials):")
    print("| choice | mean error (points) | spread over trials (points) | spread / halves' |")
    print("| --- | --- | --- | --- |")
    for name, err, spread in rows:
        print(f"| {name} | {err:+.2f} | {spread:.2f} | {spread / rows[0][2]:.2f} |")


if __name__ == "__main__":
    main()
