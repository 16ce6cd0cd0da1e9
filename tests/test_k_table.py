"""The K table's rule (issue #18): the smallest K inside K = 30's interval, and not below 15."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import numpy as np

LEADERBOARDS = Path(__file__).resolve().parents[1] / "leaderboards"


def load(name: str = "k_table"):
    """A script of ``leaderboards/`` as a module (they are scripts, not a package)."""
    spec = importlib.util.spec_from_file_location(name, LEADERBOARDS / f"{name}.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def scores(acc: float, n: int = 200) -> np.ndarray:
    return (np.arange(n) < round(acc * n)).astype(float)


def test_the_rule_takes_the_smallest_k_inside_the_interval_and_at_least_15():
    k_table = load()
    by_k = {1: (None, scores(0.40)), 5: (None, scores(0.34)), 15: (None, scores(0.33)),
            30: (None, scores(0.32))}
    # K = 30 reads 32.0 [25.9, 38.7] on 200 images: 5 and 15 lie inside, 1 (40.0) does not
    assert k_table._choice(by_k, 30).startswith("K = 15 (K inside K = 30's interval")
    assert "5, 15, 30" in k_table._choice(by_k, 30)
    by_k[15] = (None, scores(0.45))  # 15 outside: still no smaller K than 15 is taken
    assert k_table._choice(by_k, 30).startswith("K = 15 ")
    by_k = {1: (None, scores(0.50)), 5: (None, scores(0.45)), 15: (None, scores(0.42)),
            30: (None, scores(0.30))}  # only K = 30 itself lies inside its interval
    assert k_table._choice(by_k, 30).startswith("K = 30 ")
    assert "no choice" in k_table._choice({1: (None, scores(0.4))}, 1)


def test_between_attacks_compares_with_the_one_lowest_on_selection_draws():
    k_table = load()
    n = 200
    ones = np.ones(n)

    def run(select: float, score: float) -> dict:
        draws = np.stack([scores(score, n)] * 2)  # two scoring draws, alike
        return {"robust": scores(score, n), "clean_select": ones, "clean": ones,
                "clean_draws": np.stack([ones, ones]),
                "runs": [{"select": scores(select, n), "draws": draws}]}

    # b is lower on selection draws (0.30 against 0.40), so it is the reference, although it
    # reads higher on scoring draws; the per-image worst chooses on held-out scoring draws, so
    # it is not fooled by them and takes a's points everywhere
    line = k_table._between({"a": run(0.40, 0.30), "b": run(0.30, 0.35)})
    assert line.startswith("a minus b -5.0 [")
    assert "worst over these 30.0 [" in line and "minus b -5.0 [" in line
    assert "minus a +0.0 [" in line


def test_the_exit_split_puts_each_points_share_where_the_ensemble_let_the_image_go():
    k_table = load()
    # the ensemble lets the first 100 images go (0 on every selection draw); on them it still
    # reads 0.10 on scoring draws (10 images right) and EOT-PGD 0.02; on the other 100 both 0.3
    sel = np.r_[np.zeros(100), np.full(100, 0.5)]
    ens = np.r_[scores(0.10, 100), scores(0.30, 100)]
    eot = np.r_[scores(0.02, 100), scores(0.30, 100)]
    line = k_table._exit_split({"ensemble": {"robust": ens, "runs": [{"select": sel}]},
                                "EOT-PGD": {"robust": eot, "runs": [{"select": sel}]}})
    assert line.startswith("ensemble's exit: 100 of 200 images wrong in all its selection draws "
                           "read 5.0 points there")
    assert "the other 100 15.0; EOT-PGD 1.0 and 15.0" in line


def test_the_convergence_table_pairs_every_setting_with_the_first_on_the_same_images():
    table = load("convergence_table")._table

    def record(eot: int, restarts: int = 1) -> dict:
        return {"attack": {"eot_iter": eot, "n_iter": 100, "restarts": restarts},
                "attack_draws": 1, "n": 200, "ensemble": {"apgd-ce": {"wins": 3}}}

    lines = table([(record(5), scores(0.40)), (record(10), scores(0.35)),
                   (record(5, 2), scores(0.40)[:100])])
    assert "minus the first setting" in lines[0] and "wins: apgd-ce" in lines[0]
    base, eot10, other_images = lines[2:]
    assert "| 40.0 [" in base and "| - |" in base  # the first is the reference
    assert "| 35.0 [" in eot10 and "| -5.0 [-8." in eot10  # 10 of 200 images, all one way
    assert "| - |" in other_images  # different images: no paired difference
    assert table([]) == []


def test_an_ensemble_row_names_the_members_it_ran_beyond_the_defaults():
    k_table = load()
    from mi_bench.attacks.registry import default_members

    defaults = list(default_members())

    def name(attacks):
        return k_table._attack({"suite": "autoattack", "attack": {"attacks": attacks}})

    assert name(None) == "ensemble"
    assert name(list(reversed(defaults))) == "ensemble"
    assert name(defaults + ["apgd-t"]) == "ensemble + apgd-t"
    assert name(defaults[:2]) == "ensemble (" + ", ".join(defaults[:2]) + ")"
    assert k_table._attack({"suite": "transfer", "attack": {}}) == "transfer"
