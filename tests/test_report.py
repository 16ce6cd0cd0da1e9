"""Tests for reports, plots, RobustBench-format entries and the leaderboard command.

Records are hand-made with known per-example arrays, so every expected number is exact.
"""

from __future__ import annotations

import json
import re
import statistics
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from mi_bench import cli as cli_module
from mi_bench.attacks.draws import Draws, keep_worst
from mi_bench.errors import UserError
from mi_bench.intervals import wilson
from mi_bench.report.columns import fmt_cell
from mi_bench.report.gains import paired_gains
from mi_bench.report.leaderboard import COLUMNS, load_leaderboard, read_model_info
from mi_bench.report.tables import (
    board_ranks,
    build_report,
    leaderboard_table,
    parse_baseline,
    parse_formats,
    render_markdown,
    write_report,
)
from mi_bench.results import PROTOCOL, ResultStore, record_key

EPS8 = 8 / 255
MI = {"mode": "ol", "n_samples": 30, "lam": 0.5, "pool_split": "train"}
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
RB_KEYS = {"link", "name", "authors", "additional_data", "number_forward_passes", "dataset",
           "venue", "architecture", "eps", "clean_acc", "reported", "autoattack_acc",
           "footnote", "unreliable"}


def _b(rows: list[list[int]]) -> np.ndarray:
    return np.array(rows, dtype=bool)


def put(store: ResultStore, *, adv, clean=None, checkpoint="prn-mixup", defense="mi-ol",
        suite="autoattack", eps=EPS8, eps_label="8/255", seed=0, k=5, eot=20,
        surrogate=None, mi="default", adv_select=None, clean_select=None,
        attacks=("apgd-ce", "apgd-dlr")) -> dict:
    """Write one record the way ``AttackRun.run_seed`` does, from the (draws, n) arrays of the
    point and the clean image (selection draws: the scoring draws unless given)."""
    point = Draws(_b(adv_select if adv_select is not None else adv), _b(adv))
    clean = np.ones_like(point.score) if clean is None else _b(clean)
    x = Draws(_b(clean_select) if clean_select is not None else clean, clean)
    kept, chosen = keep_worst([x, point])
    adv = kept.score
    mi = (MI if defense != "none" else None) if mi == "default" else mi
    if suite == "autoattack":
        attack = {"version": "rand", "attacks": list(attacks), "restarts": 1,
                  "eot_iter": eot, "n_iter": 100}
    else:
        attack = {"steps": 10, "step_size": 2 / 255, "loss": "ce", "restarts": 1,
                  "eot_iter": eot, "targeted": False, "variant": "pgd"}
    ident = {"protocol": PROTOCOL, "checkpoint": checkpoint,
             "checkpoint_sha256": f"sha-{checkpoint}", "defense": defense,
             "defense_settings": mi or {}, "suite": suite, "attack": attack,
             "attack_draws": k if mi and suite in ("autoattack", "eot-pgd") else None,
             "norm": "Linf", "eps": round(eps, 10), "seed": seed, "n": adv.shape[1],
             "eval_repeats": adv.shape[0], "select_repeats": kept.select.shape[0],
             "data": "cifar10/test"}
    if surrogate:
        ident["surrogate"] = surrogate
    key = record_key(ident)
    robust = adv
    label = defense if not mi else f"{defense} (λ={mi.get('lam')})"
    if mi and mi.get("pool_split", "train") != "train":
        label = f"{defense} (λ={mi.get('lam')}, pool {mi['pool_split']})"
    record = {"key": key, **ident, "eps_label": eps_label, "defense_label": label, "clean_acc": float(clean.mean()),
              "clean_worst_acc": float(clean.all(0).mean()), "robust_acc": float(robust.mean()),
              "robust_worst_acc": float(robust.all(0).mean()),
              "robust_select_acc": float(kept.select.mean()), "forwards": 10, "backwards": 5,
              "seconds": 1.0, "flags": {"weaker_attack_stronger": []}, "warnings": [],
              "model_card": {"arch": "preact-resnet18", "method": checkpoint.split("-")[-1],
                             "seed": 0, "epochs": 200, "clean_acc": 0.9, "dataset": "cifar10"},
              "forwards_per_prediction": 1 + mi["n_samples"] if mi else 1, "versions": {},
              "created": "2026-01-01T00:00:00"}
    store.write(key, record, {"clean": clean, "clean_select": x.select, "adv": adv,
                              "adv_select": kept.select, "chosen": chosen})
    return record


# The three seeds of the MI AutoAttack cell: per-seed robust accuracy 0.75, 0.875, 0.75 and clean
# accuracy 1, 0.875, 1; the per-example worst case (adv & clean in every draw of every seed) keeps
# example 0 only: 0.25.
# Using adv alone would keep examples 0 and 3 (0.5): seed 1 misclassifies example 3 when clean.
MI_AA = [
    {"seed": 0, "adv": [[1, 1, 0, 1], [1, 0, 1, 1]]},
    {"seed": 1, "adv": [[1, 1, 1, 1], [1, 1, 1, 1]], "clean": [[1, 1, 1, 1], [1, 1, 1, 0]]},
    {"seed": 2, "adv": [[1, 0, 0, 1], [1, 1, 1, 1]]},
]


@pytest.fixture()
def board_root(tmp_path: Path) -> Path:
    """A five-entry board: A (unreliable) 90, B 85, C 79, D 60, E 60 (AutoAttack, percent)."""
    root = tmp_path / "board"
    root.mkdir()
    rows = []
    for mid, acc, unreliable in (("A", 90.0, True), ("B", 85.0, False), ("C", 79.0, False),
                                 ("D", 60.0, False), ("E", 60.0, False)):
        rows.append({"model_id": mid, "paper": f"Paper {mid}", "venue": "V", "architecture":
                     "WRN-28-10", "clean_acc": 90.0, "autoattack_acc": acc, "reported_acc":
                     acc, "extra_data": mid == "B", "forward_passes": 1,
                     "unreliable": unreliable, "link": "", "eps": "8/255"})
    pd.DataFrame(rows, columns=COLUMNS).to_csv(root / "cifar10_Linf.csv", index=False)
    return root


@pytest.fixture()
def full_store(tmp_path: Path) -> Path:
    """MI row with pgd, autoattack (K=5 x3 seeds, K=1 weaker), transfer from two surrogates;
    a base row with AutoAttack only (EOT 1 weaker, EOT 20 stronger); eps 4/255 for the eps plot."""
    store = ResultStore(tmp_path / "results")
    for spec in MI_AA:
        put(store, **spec)
    put(store, seed=0, k=1, adv=[[1, 1, 1, 1], [1, 1, 1, 0]])  # weaker: 7/8
    put(store, suite="pgd", seed=0, adv=[[1, 1, 1, 1], [1, 1, 1, 1]])
    put(store, suite="pgd", seed=1, adv=[[1, 1, 1, 0], [1, 1, 1, 1]])
    put(store, suite="pgd", seed=0, eps=4 / 255, eps_label="4/255", adv=[[1, 1, 1, 1]] * 2)
    put(store, suite="transfer", surrogate="sA", adv=[[1, 1, 0, 0], [1, 1, 0, 0]])
    put(store, suite="transfer", surrogate="sB", adv=[[1, 0, 0, 0], [1, 0, 1, 0]])
    put(store, checkpoint="prn-erm", defense="none", eot=1, adv=[[1, 1, 1, 1, 0]])
    put(store, checkpoint="prn-erm", defense="none", eot=20, adv=[[1, 1, 1, 0, 0]])  # 60 %
    return tmp_path / "results"


def _no_ci(cell: str) -> str:
    """A formatted cell without its interval, to compare with the interval-free format."""
    return re.sub(r" \[[^\]]*\]", "", cell)


def _mi_row(frame: pd.DataFrame) -> pd.Series:
    mine = frame[(frame["source"] == "mi-bench") & (frame["model"] == "prn-mixup")]
    assert len(mine) == 1
    return mine.iloc[0]


def test_mean_std_worst_and_rank(full_store: Path, board_root: Path) -> None:
    rep = build_report(full_store, "robustbench:cifar10:Linf", root=board_root)
    accs = [0.75, 0.875, 0.75]
    mean, std = statistics.mean(accs), statistics.stdev(accs)  # sample std, ddof=1
    row = _mi_row(rep.ranked)
    assert row["adaptive_mean"] == pytest.approx(100 * mean, abs=1e-3)
    assert row["adaptive_std"] == pytest.approx(100 * std, abs=1e-3)
    assert row["adaptive_worst"] == pytest.approx(25.0)
    assert row["clean_mean"] == pytest.approx(100 * statistics.mean([1, 7 / 8, 1]), abs=1e-3)
    assert row["N"] == 31 and row["seeds"] == 3 and row["n"] == 4
    # B (85) is ahead; A is unreliable and does not count; C (79) is behind 79.17
    assert row["rank"] == 2 and row["rank_by"] == "autoattack"
    md = rep.ranked_md[rep.ranked_md["model"] == "**prn-mixup**"].iloc[0]
    assert _no_ci(md["adaptive"]) == "79.17 ± 7.22 (25.00)"
    assert _no_ci(md["adaptive"]) == fmt_cell(mean, std, 0.25)
    assert row["adaptive_ci_low"] <= row["adaptive_mean"] <= row["adaptive_ci_high"]
    assert row["adaptive_ci_high"] - row["adaptive_ci_low"] > 10, "n = 4: a wide interval"
    # oblivious: two seeds (1.0, 0.875), worst keeps 3 of 4 examples
    assert _no_ci(md["oblivious"]) == f"93.75 ± {100 * statistics.stdev([1, 0.875]):.2f} (75.00)"
    # transfer: the minimum over surrogates (sB, 3/8), and the notes say which
    assert row["transfer_mean"] == pytest.approx(37.5)
    assert "surrogate sB" in row["notes"] and "others: surrogate sA: 50.00" in row["notes"]
    # strongest attack setting: K=5 beat K=1 and the note says so
    assert "adaptive: strongest of 2 settings (K 5); others: K 1: 87.50" in row["notes"]
    # base model: EOT 20 (60 %) is stronger than EOT 1 (80 %); ties behind D and E -> rank 5
    base = rep.ranked[rep.ranked["model"] == "prn-erm"].iloc[0]
    assert base["adaptive_mean"] == pytest.approx(60.0)
    assert base["rank"] == 5 and "EOT 20" in base["notes"]
    # one merged table: RobustBench rows keep their own ranks, sorted by adaptive accuracy
    assert list(rep.ranked["model"]) == ["A", "B", "prn-mixup", "C", "D", "E", "prn-erm"]
    assert list(rep.ranked["rank"].astype("object").fillna(0)) == [0, 1, 2, 2, 3, 3, 5]
    assert rep.ranked_md.loc[rep.ranked["model"] == "A", "rank"].item() == "—"


def test_board_ranks_match_rank_of(board_root: Path) -> None:
    board = load_leaderboard("cifar10", "Linf", board_root)
    ranks = dict(zip(board["model_id"], board_ranks(board)))
    assert ranks["B"] == 1 and ranks["C"] == 2 and ranks["D"] == ranks["E"] == 3
    assert pd.isna(ranks["A"])


def test_files_written_and_csv_marks_missing(full_store: Path, board_root: Path,
                                             tmp_path: Path) -> None:
    rep = build_report(full_store, root=board_root)
    out = tmp_path / "out"
    written = write_report(rep, out, ["md", "csv"], plots=False)
    for name in ("report.md", "report.csv", "eps_sweep.md", "eps_sweep.csv"):
        assert (out / name) in written.files and (out / name).stat().st_size > 0
    assert not (out / "plots").exists()
    frame = pd.read_csv(out / "report.csv", na_values=["—"], keep_default_na=False)
    row = _mi_row(frame)
    assert row["adaptive_mean"] == pytest.approx(79.1667, abs=1e-3)
    assert np.isnan(row["eot_pgd_mean"])  # never measured, never invented
    assert "—" in (out / "report.csv").read_text()
    sweep = pd.read_csv(out / "eps_sweep.csv", na_values=["—"], keep_default_na=False)
    assert sorted(sweep.loc[sweep["model"] == "prn-mixup", "eps"]) == ["4/255", "8/255"]
    md = (out / "report.md").read_text()
    assert "| **mi-bench** |" in md and "79.17 [" in md and "± 7.22 (25.00)" in md
    assert not list(out.glob(".*.tmp"))
    # the randomized MI row sits in its own section, the deterministic base row does not
    main, _, randomized = md.partition("## Randomized defenses (RobustBench admits only "
                                       "deterministic ones)")
    assert "**prn-mixup**" in randomized.split("## Missing")[0] and "**prn-mixup**" not in main
    assert "**prn-erm**" in main


def test_partial_store_lists_missing(tmp_path: Path, board_root: Path) -> None:
    store = ResultStore(tmp_path / "results")
    put(store, checkpoint="prn18w16-erm-s0", defense="none", suite="pgd", adv=[[1, 0]])
    put(store, checkpoint="prn-mixup", suite="eot-pgd", eps=4 / 255, eps_label="4/255",
        adv=[[1, 0]])
    rep = build_report(tmp_path / "results", root=board_root)
    assert "missing: adaptive for prn18w16-erm-s0 + none (eps 8/255 Linf)" in rep.missing
    assert "missing: EOT-PGD for prn18w16-erm-s0 + none (eps 8/255 Linf)" in rep.missing
    assert any(m.startswith("missing: all columns for prn-mixup + mi-ol (λ=0.5)")
               and "4/255" in m for m in rep.missing)
    row = rep.ranked[rep.ranked["source"] == "mi-bench"].iloc[0]
    assert pd.isna(row["rank"]) and np.isnan(row["adaptive_mean"])  # no adaptive: no rank
    assert row["oblivious_mean"] == pytest.approx(50.0)
    out = tmp_path / "out"
    write_report(rep, out, ["md"], plots=False)
    md = (out / "report.md").read_text()
    assert "- missing: adaptive for prn18w16-erm-s0 + none (eps 8/255 Linf)" in md
    assert not (out / "report.csv").exists()


def test_eot_pgd_stands_in_for_rank_and_is_marked(tmp_path: Path, board_root: Path) -> None:
    store = ResultStore(tmp_path / "results")
    put(store, suite="eot-pgd", adv=[[1, 1, 1, 1, 1, 1, 1, 1, 1, 0]])  # 90 %: above A too
    rep = build_report(tmp_path / "results", root=board_root)
    row = rep.ranked[rep.ranked["source"] == "mi-bench"].iloc[0]
    assert row["rank"] == 1 and row["rank_by"] == "eot-pgd"
    # 9/10 right: Wilson [59.6, 98.2] spans ranks 1 (above A's reliable rivals) to 5 (behind
    # B, C, D and E at 60)
    assert rep.ranked_md[rep.ranked_md["source"] == "**mi-bench**"].iloc[0]["rank"] == \
        "1 (1–5) (EOT-PGD)"
    assert row["rank_best"] == 1 and row["rank_worst"] == 5


def test_empty_store_is_a_user_error(tmp_path: Path, board_root: Path, monkeypatch,
                                     capsys) -> None:
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="no records in"):
        build_report(tmp_path / "empty", root=board_root)
    with pytest.raises(UserError, match="no records in"):
        build_report(tmp_path / "absent", root=board_root)
    monkeypatch.setattr(sys, "argv", ["mi-bench", "report", "--results", str(tmp_path / "empty"),
                                      "--out", str(tmp_path / "out")])
    with pytest.raises(SystemExit) as exc:
        cli_module.main()
    assert exc.value.code == 2
    assert capsys.readouterr().err.strip().startswith("error: no records in")


def test_bad_options_are_user_errors() -> None:
    with pytest.raises(UserError):
        parse_baseline("cifar10:Linf")
    with pytest.raises(UserError):
        parse_formats("md,pdf")
    assert parse_formats("csv, md,csv") == ["csv", "md"]
    assert parse_formats("md,html") == ["md", "html"]


def test_plots_are_png_and_empty_plots_skipped(full_store: Path, board_root: Path,
                                               tmp_path: Path) -> None:
    rep = build_report(full_store, root=board_root)
    out = tmp_path / "out"
    written = write_report(rep, out, ["md"], plots=True)
    plots = out / "plots"
    expected = {"eps_prn-mixup_Linf.png", "convergence_k.png", "convergence_eot.png"}
    assert {p.name for p in plots.iterdir()} == expected
    for name in expected:
        data = (plots / name).read_bytes()
        assert data[:8] == PNG_MAGIC and len(data) > 1024
    # no records differ in N or lambda, the base model has a single eps: no image, a note
    assert not (plots / "mi_n.png").exists() and not (plots / "mi_lambda.png").exists()
    assert any("mi_n plot skipped" in n for n in written.notes)
    assert any("eps plot skipped for prn-erm" in n for n in written.notes)
    assert "mi_lambda plot skipped" in (out / "report.md").read_text()


def test_plot_against_mi_n(tmp_path: Path, board_root: Path) -> None:
    store = ResultStore(tmp_path / "results")
    for n_samples, adv in ((10, [[1, 0]]), (30, [[1, 1]])):
        put(store, suite="pgd", mi={**MI, "n_samples": n_samples}, adv=adv)
    rep = build_report(tmp_path / "results", root=board_root)
    assert sorted(rep.ranked.loc[rep.ranked["source"] == "mi-bench", "N"]) == [11, 31]
    write_report(rep, tmp_path / "out", ["csv"], plots=True)
    data = (tmp_path / "out" / "plots" / "mi_n.png").read_bytes()
    assert data[:8] == PNG_MAGIC and len(data) > 1024


def test_model_info_entries(full_store: Path, board_root: Path, tmp_path: Path) -> None:
    rep = build_report(full_store, root=board_root)
    out = tmp_path / "out"
    write_report(rep, out, ["md"], plots=False)
    folder = out / "model_info" / "cifar10" / "Linf"
    entry = json.loads((folder / "mibench_prn-mixup_mi-ol.json").read_text())
    assert RB_KEYS <= set(entry)
    assert entry["number_forward_passes"] == 31
    assert entry["autoattack_acc"] == "79.17" and entry["clean_acc"] == "95.83"
    assert entry["eps"] == "8/255" and entry["dataset"] == "cifar10"
    assert "3 seed(s)" in entry["footnote"] and "randomized" in entry["footnote"]
    assert "2 evaluation draw(s)" in entry["footnote"] and "K=5" in entry["footnote"]
    assert entry["randomized"] is True and entry["n_examples"] == 4 and entry["reported"] == ""
    lo, hi = entry["autoattack_acc_ci95"]
    assert lo < 79.17 < hi and "not a leaderboard entry" in entry["footnote"]
    base = json.loads((folder / "mibench_prn-erm_none.json").read_text())
    assert base["number_forward_passes"] == 1 and base["autoattack_acc"] == "60.00"
    assert base["randomized"] is False
    # the leaderboard reader accepts them as RobustBench entries
    (out / "model_info" / "cifar10" / "L2").mkdir()
    frame = read_model_info(out / "model_info", "cifar10", "Linf")
    assert dict(zip(frame["model_id"], frame["forward_passes"])) == {
        "mibench_prn-mixup_mi-ol": 31, "mibench_prn-erm_none": 1}


def test_report_removes_its_stale_model_info(full_store: Path, board_root: Path,
                                             tmp_path: Path) -> None:
    folder = tmp_path / "out" / "model_info" / "cifar10" / "Linf"
    folder.mkdir(parents=True)
    stale, foreign = folder / "mibench_gone_mi-ol.json", folder / "mibench_theirs.json"
    stale.write_text(json.dumps({"measured_by": "mi-bench (not a RobustBench leaderboard entry)"}))
    foreign.write_text(json.dumps({"name": "someone else's entry"}))
    written = write_report(build_report(full_store, root=board_root), tmp_path / "out", ["md"],
                           plots=False)
    assert not stale.exists() and foreign.exists()  # only mi-bench's own entries go
    assert (folder / "mibench_prn-mixup_mi-ol.json").is_file()
    assert any("mibench_gone_mi-ol.json" in n for n in written.removed)
    assert "mibench_gone" not in (tmp_path / "out" / "report.md").read_text()  # a rerun's twin


def test_report_cli(full_store: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = CliRunner().invoke(cli_module.cli, [
        "report", "--results", str(full_store), "--out", str(out), "--no-plots",
        "--format", "md"])
    assert result.exit_code == 0, result.output
    assert "missing: EOT-PGD for prn-mixup + mi-ol (λ=0.5) (eps 8/255 Linf)" in result.output
    assert (out / "report.md").is_file() and not (out / "report.csv").exists()


# -- mi-bench leaderboard (the committed snapshot) -------------------------------------------
def _run(*args: str):
    return CliRunner().invoke(cli_module.cli, ["leaderboard", *args])


def test_leaderboard_markdown_top() -> None:
    result = _run("--dataset", "cifar10", "--threat", "Linf", "--top", "3")
    assert result.exit_code == 0, result.output
    lines = result.output.strip().splitlines()
    assert lines[0].startswith("| rank") and "AutoAttack" in lines[0]
    assert len(lines) == 2 + 3
    board = load_leaderboard("cifar10", "Linf")
    assert board["model_id"].iloc[0] in lines[2]


def test_leaderboard_csv_filter_and_extra_data() -> None:
    result = _run("--format", "csv", "--filter", "WIDERESNET-28", "--no-extra-data")
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(pd.io.common.StringIO(result.output))
    assert len(frame) > 0 and not frame["extra_data"].any()
    hay = (frame["model_id"] + frame["paper"] + frame["architecture"]).str.lower()
    assert hay.str.contains("wideresnet-28").all()
    full = leaderboard_table("cifar10", "Linf")
    # ranks are taken before filtering, so a filtered row keeps its place on the full board
    ranks = dict(zip(full["model_id"], full["rank"]))
    for mid, rank in zip(frame["model_id"], frame["rank"]):
        assert str(ranks[mid]) == str(rank) or (pd.isna(ranks[mid]) and rank == "—")


def test_leaderboard_bad_top_exits_2(monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "argv", ["mi-bench", "leaderboard", "--top", "0"])
    with pytest.raises(SystemExit) as exc:
        cli_module.main()
    assert exc.value.code == 2
    assert capsys.readouterr().err.startswith("error: --top must be at least 1")


def test_worst_over_attacks_is_the_per_image_minimum(tmp_path: Path, board_root: Path) -> None:
    store = ResultStore(tmp_path / "r")
    put(store, suite="pgd", adv=[[1, 1, 0, 1]])
    put(store, suite="eot-pgd", adv=[[1, 0, 1, 1]])
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    (row,) = rep.sweep.to_dict("records")
    assert row["oblivious_mean"] == 75.0 and row["eot_pgd_mean"] == 75.0
    assert row["worst_over_attacks_mean"] == 50.0, "images 2 and 3 fall to different attacks"
    lo, hi = wilson(2, 4)
    assert row["worst_over_attacks_ci_low"] == pytest.approx(100 * lo, abs=1e-3)
    assert row["worst_over_attacks_ci_high"] == pytest.approx(100 * hi, abs=1e-3)


def test_a_row_never_mixes_image_sets(tmp_path: Path, board_root: Path) -> None:
    store = ResultStore(tmp_path / "r")
    put(store, suite="pgd", adv=[[1, 1, 0, 1, 1, 0]])  # 6 images
    put(store, suite="eot-pgd", adv=[[1, 0, 1, 1]])  # the first 4
    with pytest.raises(UserError, match=r"mixes image sets \(EOT-PGD on n=4 .*oblivious on n=6"):
        build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)


def test_records_of_an_older_protocol_are_left_out(tmp_path: Path, board_root: Path,
                                                   capsys) -> None:
    store = ResultStore(tmp_path / "r")
    put(store, suite="pgd", adv=[[1, 1, 0, 1]])
    old = put(store, suite="eot-pgd", adv=[[0, 0, 0, 0]])
    path = store.record_path(old["key"])
    path.write_text(json.dumps({k: v for k, v in old.items() if k != "protocol"}))
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    assert rep.n_records == 1 and "older protocol" in capsys.readouterr().err


def test_autoattack_above_eot_pgd_is_flagged(tmp_path: Path, board_root: Path) -> None:
    store = ResultStore(tmp_path / "r")
    put(store, suite="autoattack", adv=[[1, 1, 0, 1]])
    put(store, suite="eot-pgd", adv=[[1, 0, 0, 1]])
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    assert "AutoAttack reads above EOT-PGD (75.00 > 50.00)" in rep.sweep.iloc[0]["notes"]


def test_defense_gain_is_paired_over_the_same_images(tmp_path: Path, board_root: Path) -> None:
    store = ResultStore(tmp_path / "r")
    n = 40
    base = [1] * 10 + [0] * 30  # 25% robust without the defense
    mi = [1] * 10 + [1] * 8 + [0] * 22  # the same 10 images, and 8 more: +20 points per image
    put(store, suite="eot-pgd", defense="none", adv=[base])
    put(store, suite="eot-pgd", adv=[mi])
    put(store, suite="eot-pgd", defense="gaussian-noise", mi=None, adv=[[0] + base[1:]])
    put(store, suite="eot-pgd", defense="none", adv=[base[:20]], eps=EPS8 / 2,
        eps_label="4/255")  # another image set at another eps: nothing to pair with
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    gains = {g.row.defense: g for g in paired_gains(rep.rows)}
    assert set(gains) == {"mi-ol", "gaussian-noise"}
    assert gains["mi-ol"].robust == pytest.approx(8 / n)
    assert gains["mi-ol"].robust_ci[0] > 0 and gains["mi-ol"].verdict == "gain"
    assert gains["gaussian-noise"].robust == pytest.approx(-1 / n)
    assert gains["gaussian-noise"].verdict == "no difference shown"
    text = render_markdown(rep)
    assert "paired over the same images" in text and "+20.00 [" in text


def test_a_gain_needs_every_attack_of_the_undefended_row(tmp_path: Path,
                                                         board_root: Path) -> None:
    """A defended row that missed the undefended row's AutoAttack shows a positive difference
    against weaker attacks: not called a gain."""
    store = ResultStore(tmp_path / "r")
    base = [1] * 10 + [0] * 30
    mi = [1] * 18 + [0] * 22
    put(store, suite="eot-pgd", defense="none", adv=[base])
    put(store, suite="autoattack", defense="none", adv=[base])
    put(store, suite="eot-pgd", adv=[mi])
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    (gain,) = paired_gains(rep.rows)
    assert gain.robust_ci[0] > 0 and gain.unmatched == ("adaptive",)
    assert gain.verdict == ("gain against the attacks both rows faced (no adaptive on the "
                            "defended row)")
    put(store, suite="autoattack", adv=[mi])
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    (gain,) = paired_gains(rep.rows)
    assert gain.unmatched == () and gain.verdict == "gain"


def test_a_gain_needs_every_attack_inside_a_column_too(tmp_path: Path, board_root: Path) -> None:
    """The bare row's AutoAttack ran FAB-T and Square, the defended row's did not: the same
    column, fewer attacks, so a positive difference is not called a gain."""
    store = ResultStore(tmp_path / "r")
    base, mi = [1] * 10 + [0] * 30, [1] * 18 + [0] * 22
    put(store, suite="autoattack", defense="none", adv=[base],
        attacks=("apgd-ce", "apgd-t", "fab-t", "square"))
    put(store, suite="autoattack", adv=[mi], attacks=("apgd-ce", "apgd-t"))
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    (gain,) = paired_gains(rep.rows)
    assert gain.robust_ci[0] > 0 and gain.unmatched == ("FAB-T/SQUARE in adaptive",)
    assert gain.verdict.startswith("not shown: no FAB-T/SQUARE in adaptive")


def test_the_gain_against_the_attacks_both_rows_faced(tmp_path: Path, board_root: Path) -> None:
    """The bare row's standard AutoAttack (FAB-T, Square) is the lower of its two records; read
    against only the attacks the defended row faced, the bare row is its other record, and the
    gain is called on that, with the missing attacks named."""
    store = ResultStore(tmp_path / "r")
    ensemble, standard = ("apgd-ce", "apgd-dlr"), ("apgd-ce", "apgd-t", "fab-t", "square")
    base, mi = [1] * 10 + [0] * 30, [1] * 18 + [0] * 22
    put(store, suite="autoattack", defense="none", adv=[base], attacks=ensemble)
    put(store, suite="autoattack", defense="none", adv=[[0] * 40], attacks=standard)
    put(store, suite="autoattack", adv=[mi], attacks=ensemble)
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    (gain,) = paired_gains(rep.rows)
    assert gain.unmatched == ("APGD-T/FAB-T/SQUARE in adaptive",)
    assert gain.robust == pytest.approx(18 / 40) and gain.matched == pytest.approx(8 / 40)
    assert gain.matched_ci[0] > 0
    assert gain.verdict == ("gain against the attacks both rows faced (no APGD-T/FAB-T/SQUARE "
                            "in adaptive on the defended row)")
    assert "+20.00 [" in render_markdown(rep)
    # against the attacks both faced the bare row is as strong: no gain is called
    put(store, suite="autoattack", adv=[base], seed=1, attacks=ensemble)
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    (gain,) = paired_gains(rep.rows)
    assert gain.matched == pytest.approx(0) and gain.verdict.startswith("not shown: no APGD-T")
    # no run of the bare row uses only shared attacks: nothing to read against
    store2 = ResultStore(tmp_path / "r2")
    put(store2, suite="autoattack", defense="none", adv=[[0] * 40], attacks=standard)
    put(store2, suite="autoattack", adv=[mi], attacks=ensemble)
    rep = build_report(tmp_path / "r2", "robustbench:cifar10:Linf", root=board_root)
    (gain,) = paired_gains(rep.rows)
    assert gain.matched is None and gain.matched_text == "—"
    assert gain.verdict.startswith("not shown: no APGD-T/FAB-T/SQUARE")


def test_identical_rows_get_an_interval_not_a_point(tmp_path: Path, board_root: Path) -> None:
    """Every paired difference zero: the interval is the rule-of-three share of images that
    could differ, not [+0.0, +0.0]."""
    store = ResultStore(tmp_path / "r")
    same = [1] * 20 + [0] * 20
    put(store, suite="autoattack", defense="none", adv=[same])
    put(store, suite="autoattack", adv=[same])
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    (gain,) = paired_gains(rep.rows)
    share = wilson(0, 40)[1]
    assert gain.robust == 0 and gain.robust_ci == pytest.approx((-share, share))
    assert gain.verdict == "no difference shown"


def test_worst_over_attacks_of_a_randomized_row_chooses_on_held_out_draws(tmp_path: Path) -> None:
    """Each attack is wrong in one of two scoring draws: chosen per image on the draw it reads,
    the worst would be 0; chosen on the other draw (held out) it reads 1, above both columns,
    and the row says so rather than quoting the lower column."""
    from mi_bench.report.rows import collect_rows, read_records

    store = ResultStore(tmp_path / "r")
    put(store, suite="pgd", adv=[[0, 0, 0, 0], [1, 1, 1, 1]])
    put(store, suite="eot-pgd", adv=[[1, 1, 1, 1], [0, 0, 0, 0]])
    (row,) = collect_rows(*read_records(tmp_path / "r"))
    assert row.randomized
    assert row.worst_over_attacks[0] == 1.0
    assert [c.mean for c in row.cells.values()] == [0.5, 0.5]
    (note,) = [n for n in row.notes() if n.startswith("worst over attacks")]
    assert "reads above" in note and "(50.00)" in note and "(100.00)" in note


def test_worst_over_attacks_takes_every_variant_not_only_the_shown_one(
        tmp_path: Path, board_root: Path) -> None:
    store = ResultStore(tmp_path / "r")
    put(store, suite="autoattack", eot=20, adv=[[1, 0, 0, 1]])  # shown: 50%
    put(store, suite="autoattack", eot=5, adv=[[0, 1, 1, 1]])  # weaker overall, breaks image 0
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    (row,) = rep.sweep.to_dict("records")
    assert row["adaptive_mean"] == 50.0
    assert row["worst_over_attacks_mean"] == 25.0, "image 0 falls to the other setting"


def test_worst_over_attacks_takes_every_seed_as_a_run_of_its_own(
        tmp_path: Path, board_root: Path) -> None:
    """Seeds are random restarts: the column averages them, the worst takes their minimum."""
    store = ResultStore(tmp_path / "r")
    put(store, suite="eot-pgd", seed=0, adv=[[1, 1, 0, 1], [1, 1, 0, 1]])
    put(store, suite="eot-pgd", seed=1, adv=[[0, 1, 0, 1], [0, 1, 0, 1]])  # image 0 falls
    rep = build_report(tmp_path / "r", "robustbench:cifar10:Linf", root=board_root)
    (row,) = rep.sweep.to_dict("records")
    assert row["eot_pgd_mean"] == 62.5
    assert row["worst_over_attacks_mean"] == 50.0
