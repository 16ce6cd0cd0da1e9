"""Print the K table of issue #18 from a result store: per (row, suite, K) the held-out robust
accuracy (scoring draws) with its 95% interval over images, the paired difference per image
against the largest K on the same images, and the passes and seconds each image cost. Then,
per (row, attack), the K the headline's MI rows run at: the smallest K whose number lies inside
the interval of the largest K (30), and not below 15. With ``--base STORE`` (the headline's,
n = 1,000) each line also gets the paired difference against the bare model's worst over
attacks on the same first n test images (a deterministic row, so its first n entries are
exactly those images' scores). Last, per (row, K) with several attacks, each attack against the
one lowest on selection draws and their per-image worst over attacks, paired, and where the
ensemble's points go: on the images its exit rule let go, or on those it attacked to the end::

    python leaderboards/k_table.py leaderboards/results/k_table/store \
        --base leaderboards/results/headline/store
"""

from __future__ import annotations

import argparse
from collections import defaultdict

from mi_bench.attacks.draws import held_out_worst
from mi_bench.attacks.registry import default_members
from mi_bench.intervals import interval, paired_points
from mi_bench.report.cells import example_scores
from mi_bench.report.rows import collect_rows, read_records


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("store")
    ap.add_argument("--base", help="a store with the bare models' rows at 8/255 (n >= 200)")
    a = ap.parse_args()
    bare = _bare_worst(a.base) if a.base else {}
    store, records = read_records(a.store)
    if not records:
        raise SystemExit(f"error: no current-protocol records in {a.store}")
    groups = defaultdict(dict)  # (row, attack) -> K -> (record, scores)
    at_k = defaultdict(dict)  # (row, K) -> attack -> the record's example_scores
    for r in records:
        scores, problems = example_scores(store, [r])
        if scores is None:
            print(f"<!-- {problems} -->")
            continue
        row, k = f"{r['checkpoint']} + {r['defense']}", r.get("attack_draws") or 1
        groups[(row, _attack(r))][k] = (r, scores["robust"])
        at_k[(row, k)][_attack(r)] = scores
    extra = " minus bare model, worst over attacks [95%, paired] |" if bare else ""
    print("| model + defense | attack | K | n | robust (held out) [95%] | minus largest K "
          f"[95%, paired] |{extra} passes per image | seconds per image |")
    print("| --- " * (9 if bare else 8) + "|")
    choices = []
    for (row, attack), by_k in sorted(groups.items()):
        top = max(by_k)
        ref = by_k[top][1]
        for k in sorted(by_k):
            r, robust = by_k[k]
            lo, hi = interval(robust)
            diff = "-"
            if k != top and robust.shape == ref.shape:
                diff = paired_points(robust - ref)
            passes = (r["forwards"] + r["backwards"]) / r["n"]
            vs_bare = ""
            if bare:
                base = bare.get(r["checkpoint"])
                vs_bare = " - |" if base is None or len(base) < len(robust) else \
                    f" {paired_points(robust - base[:len(robust)])} |"
            print(f"| {row} | {attack} | {k} | {r['n']} | {100 * robust.mean():.1f} "
                  f"[{100 * lo:.1f}, {100 * hi:.1f}] | {diff} |{vs_bare} {passes:,.0f} | "
                  f"{r['seconds'] / r['n']:.2f} |")
        choices.append(f"{row}, {attack}: " + _choice(by_k, top))
    print()
    for line in choices:
        print(f"- {line}")
    for (row, k), by_attack in sorted(at_k.items()):
        if len(by_attack) > 1:
            print(f"- {row}, K = {k}: {_between(by_attack)}")
            if "ensemble" in by_attack:
                print(f"- {row}, K = {k}: {_exit_split(by_attack)}")


def _between(by_attack: dict) -> str:
    """Attacks at one K on the same images: each against the one lowest on selection draws
    (paired), and their per-image worst (``held_out_worst``, as a row's) against each."""
    names = sorted(by_attack, key=lambda a: by_attack[a]["runs"][0]["select"].mean())
    ref = by_attack[names[0]]
    parts = [f"{a} minus {names[0]} {paired_points(by_attack[a]['robust'] - ref['robust'])}"
             for a in names[1:]]
    worst = held_out_worst([ref["clean_draws"], *(by_attack[a]["runs"][0]["draws"]
                                                  for a in names)])
    lo, hi = interval(worst)
    parts.append(f"worst over these {100 * worst.mean():.1f} [{100 * lo:.1f}, {100 * hi:.1f}], "
                 + ", ".join(f"minus {a} {paired_points(worst - by_attack[a]['robust'])}"
                             for a in names))
    return "; ".join(parts)


def _exit_split(by_attack: dict) -> str:
    """Where the ensemble loses to another attack: on the images it let go (wrong in all its
    selection draws, its exit rule) or on those it attacked to the end. Both attacks are read
    on their scoring draws, split by the ensemble's selection draws, so no split reads a number
    it chose; points per 100 images of the whole set."""
    ens = by_attack["ensemble"]
    gone = ens["runs"][0]["select"] == 0

    def points(robust, where) -> str:
        return f"{100 * robust[where].sum() / len(gone):.1f}"

    parts = [f"{a} {points(by_attack[a]['robust'], gone)} and "
             f"{points(by_attack[a]['robust'], ~gone)}"
             for a in sorted(set(by_attack) - {"ensemble"})]
    return (f"ensemble's exit: {int(gone.sum())} of {len(gone)} images wrong in all its "
            f"selection draws read {points(ens['robust'], gone)} points there (scoring draws), "
            f"the other {int((~gone).sum())} {points(ens['robust'], ~gone)}; "
            + "; ".join(parts))


def _bare_worst(path: str) -> dict:
    """checkpoint -> the bare model's per-image worst over attacks at 8/255 (first n images)."""
    store, records = read_records(path)
    return {row.checkpoint: row.worst_scores for row in collect_rows(store, records)
            if row.undefended and row.eps_label == "8/255" and row.worst_scores is not None}


def _attack(r: dict) -> str:
    if r["suite"] == "eot-pgd":
        a = r["attack"]
        return f"EOT-PGD-{a['steps']} ({a['loss']}, EOT {a['eot_iter']})"
    if r["suite"] != "autoattack":
        return r["suite"]
    members = r["attack"].get("attacks") or list(default_members())
    if set(members) == set(default_members()):
        return "ensemble"
    extra = [m for m in members if m not in default_members()]
    if set(default_members()) <= set(members):
        return "ensemble + " + ", ".join(extra)
    return "ensemble (" + ", ".join(members) + ")"


def _choice(by_k: dict, top: int) -> str:
    """The issue's rule: the smallest K inside the largest K's interval, and not below 15."""
    if top < 30:
        return f"K = 30 not run (largest K {top}): no choice yet"
    lo, hi = interval(by_k[top][1])
    inside = [k for k in sorted(by_k) if lo <= by_k[k][1].mean() <= hi]
    k = max(15, inside[0])
    return (f"K = {k} (K inside K = {top}'s interval [{100 * lo:.1f}, {100 * hi:.1f}]: "
            f"{', '.join(map(str, inside))})")

if __name__ == "__main__":
    main()
