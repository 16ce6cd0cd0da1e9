"""Tests for the RobustBench leaderboard snapshots: they must match the source and rank correctly."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import pandas as pd
import pytest
from conftest import REAL_DATA

from mi_bench.errors import UserError
from mi_bench.report.leaderboard import (
    COLUMNS,
    DEFAULT_ROOT,
    SNAPSHOT_FILE,
    THREATS,
    build_snapshots,
    csv_name,
    load_leaderboard,
    main,
    rank_of,
    read_model_info,
)


def _source_dir() -> Path:
    """The real RobustBench model_info folder, or skip: it is data, not part of the repository."""
    data = REAL_DATA
    if not data:
        pytest.skip("MI_BENCH_DATA is unset: cannot compare the snapshot with RobustBench JSON")
    folder = Path(data) / "robustbench" / "model_info"
    if not folder.is_dir():
        pytest.skip(f"MI_BENCH_DATA has no robustbench/model_info folder: {folder}")
    return folder


def _entry(**overrides: object) -> dict:
    entry = {
        "link": "https://example.org/paper",
        "name": "A Paper",
        "authors": "A. Author",
        "additional_data": False,
        "number_forward_passes": 1,
        "dataset": "cifar10",
        "venue": "Nowhere 2024",
        "architecture": "WideResNet-28-10",
        "eps": "8/255",
        "clean_acc": "85.32",
        "reported": "55.00",
        "autoattack_acc": "54.10",
    }
    entry.update(overrides)
    return {k: v for k, v in entry.items() if v is not None}


def _write_tree(root: Path, entries: dict[tuple[str, str], dict[str, dict]]) -> Path:
    """A small model_info tree: {(dataset, threat): {model_id: entry}}."""
    for (dataset, threat), models in entries.items():
        folder = root / dataset / threat
        folder.mkdir(parents=True, exist_ok=True)
        for model_id, entry in models.items():
            (folder / f"{model_id}.json").write_text(json.dumps(entry), encoding="utf-8")
    return root


@pytest.mark.parametrize(("dataset", "threat"), sorted(THREATS))
def test_committed_snapshot_matches_source(dataset: str, threat: str) -> None:
    source = _source_dir()
    expected = read_model_info(source, dataset, threat)
    committed = load_leaderboard(dataset, threat)
    pd.testing.assert_frame_equal(committed, expected)
    assert len(committed) == len(list((source / dataset / threat).glob("*.json")))


def test_committed_snapshot_checksums() -> None:
    manifest_path = DEFAULT_ROOT / SNAPSHOT_FILE
    if not manifest_path.is_file():
        pytest.fail(f"{manifest_path} missing: build the snapshot with python -m mi_bench.report.leaderboard")
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    assert manifest["source"] == "model_info"
    assert set(manifest["files"]) == {csv_name(d, t) for d, t in THREATS}
    for (dataset, threat) in THREATS:
        name = csv_name(dataset, threat)
        data = (DEFAULT_ROOT / name).read_bytes()
        assert hashlib.sha256(data).hexdigest() == manifest["files"][name]["sha256"], name
        assert len(load_leaderboard(dataset, threat)) == manifest["files"][name]["rows"], name


def test_read_model_info_parses_and_sorts(tmp_path: Path) -> None:
    root = _write_tree(
        tmp_path,
        {
            ("cifar10", "Linf"): {
                "b_model": _entry(autoattack_acc="60.00", unreliable=True),
                "a_model": _entry(autoattack_acc="60.00", name=" Title\n", additional_data=True),
                "c_model": _entry(autoattack_acc=70.5, clean_acc="90.1%", reported=""),
                "d_model": _entry(autoattack_acc="10", number_forward_passes=3, link=None),
            }
        },
    )
    (root / "cifar10" / "Linf" / "notes.csv").write_text("ignored\n")
    board = read_model_info(root, "cifar10", "Linf")
    assert list(board.columns) == COLUMNS
    assert list(board["model_id"]) == ["c_model", "a_model", "b_model", "d_model"]
    row = board.set_index("model_id")
    assert row.loc["c_model", "clean_acc"] == pytest.approx(90.1)
    assert math.isnan(row.loc["c_model", "reported_acc"])
    assert row.loc["a_model", "paper"] == "Title"
    assert bool(row.loc["a_model", "extra_data"]) is True
    assert bool(row.loc["b_model", "unreliable"]) is True
    assert bool(row.loc["a_model", "unreliable"]) is False  # absent means reliable
    assert row.loc["d_model", "forward_passes"] == 3
    assert row.loc["d_model", "link"] == ""
    assert board["autoattack_acc"].dtype == "float64"


def test_build_snapshots_round_trip(tmp_path: Path) -> None:
    models = {"m1": _entry(autoattack_acc="50.5"), "m2": _entry(autoattack_acc="60.25")}
    source = _write_tree(tmp_path / "model_info", {key: models for key in THREATS})
    out = tmp_path / "out"
    written = build_snapshots(source, out, date="2024-05-01")
    assert [p.name for p in written][-1] == SNAPSHOT_FILE
    assert sorted(p.name for p in out.iterdir()) == sorted(p.name for p in written)
    manifest = json.loads((out / SNAPSHOT_FILE).read_text())
    assert manifest["date"] == "2024-05-01"
    assert manifest["source"] == "model_info"
    for dataset, threat in THREATS:
        name = csv_name(dataset, threat)
        assert manifest["files"][name]["rows"] == 2
        digest = hashlib.sha256((out / name).read_bytes()).hexdigest()
        assert manifest["files"][name]["sha256"] == digest
        pd.testing.assert_frame_equal(
            load_leaderboard(dataset, threat, root=out), read_model_info(source, dataset, threat)
        )
    with pytest.raises(UserError, match="ISO"):
        build_snapshots(source, out, date="May 1st")


def test_rank_of_ties_and_unreliable() -> None:
    board = pd.DataFrame(
        {
            "model_id": ["top", "fake", "mid_a", "mid_b", "low"],
            "autoattack_acc": [70.0, 65.0, 60.0, 60.0, 40.0],
            "clean_acc": [90.0, 95.0, 85.0, 86.0, 80.0],
            "unreliable": [False, True, False, False, False],
        }
    )
    assert rank_of(99.0, board) == 1
    assert rank_of(70.0, board) == 2  # ties go after the existing entry
    assert rank_of(66.0, board) == 2  # the unreliable 65.0 entry does not count
    assert rank_of(64.0, board) == 2
    assert rank_of(60.0, board) == 4  # behind both 60.0 entries
    assert rank_of(59.99, board) == 4
    assert rank_of(40.0, board) == 5
    assert rank_of(0.0, board) == 5
    assert rank_of(88.0, board, column="clean_acc") == 2  # 95.0 is unreliable; only 90 ahead
    with pytest.raises(UserError, match="no column"):
        rank_of(50.0, board, column="missing")


def test_malformed_json_names_the_file(tmp_path: Path) -> None:
    folder = tmp_path / "cifar10" / "L2"
    folder.mkdir(parents=True)
    (folder / "good.json").write_text(json.dumps(_entry()))
    (folder / "broken.json").write_text('{"name": "x", "clean_acc": ')
    with pytest.raises(UserError, match="broken.json"):
        read_model_info(tmp_path, "cifar10", "L2")


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        (_entry(autoattack_acc=None), "autoattack_acc"),
        (_entry(clean_acc="n/a"), "clean_acc"),
        (_entry(clean_acc="120"), "clean_acc"),
        (_entry(unreliable="maybe"), "unreliable"),
        (["not", "an", "object"], "JSON object"),
    ],
)
def test_bad_fields_name_file_and_field(tmp_path: Path, entry: object, message: str) -> None:
    folder = tmp_path / "cifar100" / "Linf"
    folder.mkdir(parents=True)
    (folder / "odd_model.json").write_text(json.dumps(entry))
    with pytest.raises(UserError, match=message) as info:
        read_model_info(tmp_path, "cifar100", "Linf")
    assert "odd_model.json" in str(info.value)


def test_missing_folder_and_snapshot(tmp_path: Path) -> None:
    with pytest.raises(UserError, match="no such folder") as info:
        read_model_info(tmp_path / "absent", "cifar10", "Linf")
    assert str(tmp_path / "absent") in str(info.value)
    (tmp_path / "cifar10" / "Linf").mkdir(parents=True)
    with pytest.raises(UserError, match="no JSON files"):
        read_model_info(tmp_path, "cifar10", "Linf")
    with pytest.raises(UserError, match="unknown leaderboard"):
        read_model_info(tmp_path, "cifar10", "corruptions")
    with pytest.raises(UserError, match="python -m mi_bench.report.leaderboard") as info:
        load_leaderboard("cifar10", "Linf", root=tmp_path / "nowhere")
    assert "cifar10_Linf.csv" in str(info.value)


def test_main_reports_user_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["--model-info", str(tmp_path / "absent"), "--out", str(tmp_path / "out")])
    assert code == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and err.count("\n") == 1
    assert not (tmp_path / "out").exists()
