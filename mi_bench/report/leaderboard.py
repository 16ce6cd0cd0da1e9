"""RobustBench leaderboard snapshots: where our Mixup Inference numbers would rank.

RobustBench's leaderboard changes over time, so results are compared against a snapshot committed
under ``leaderboards/robustbench/`` (one CSV per threat model plus ``SNAPSHOT.json`` with the date
and checksums). The snapshot is built from RobustBench's ``model_info`` JSON files (MIT licensed)::

    python -m mi_bench.report.leaderboard --model-info DIR/robustbench/model_info --out leaderboards/robustbench

Accuracies stay in percent, as RobustBench writes them (``85.32`` means 85.32 %).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import math
import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from mi_bench.errors import UserError

THREATS = {("cifar10", "Linf"), ("cifar10", "L2"), ("cifar100", "Linf")}
COLUMNS = [
    "model_id",
    "paper",
    "venue",
    "architecture",
    "clean_acc",
    "autoattack_acc",
    "reported_acc",
    "extra_data",
    "forward_passes",
    "unreliable",
    "link",
    "eps",
]
STR_COLUMNS = ["model_id", "paper", "venue", "architecture", "link", "eps"]
FLOAT_COLUMNS = ["clean_acc", "autoattack_acc", "reported_acc"]
BOOL_COLUMNS = ["extra_data", "unreliable"]
INT_COLUMNS = ["forward_passes"]
SNAPSHOT_FILE = "SNAPSHOT.json"
DEFAULT_ROOT = Path(__file__).resolve().parents[2] / "leaderboards" / "robustbench"
BUILD_COMMAND = (
    "python -m mi_bench.report.leaderboard --model-info DIR/robustbench/model_info "
    "--out leaderboards/robustbench"
)


def _check_threat(dataset: str, threat: str) -> None:
    """Only the threat models we compare against have an AutoAttack column."""
    if (dataset, threat) not in THREATS:
        known = ", ".join(f"{d}/{t}" for d, t in sorted(THREATS))
        raise UserError(f"unknown leaderboard {dataset}/{threat}; known: {known}")


def csv_name(dataset: str, threat: str) -> str:
    """File name of one threat model's snapshot, e.g. ``cifar10_Linf.csv``."""
    return f"{dataset}_{threat}.csv"


def _text(entry: dict[str, Any], key: str, path: Path) -> str:
    """Whitespace is normalized: some upstream titles carry stray spaces or newlines."""
    value = entry.get(key)
    if value is None:
        return ""
    if not isinstance(value, str):
        raise UserError(f"{path}: field {key!r} should be a string, got {value!r}")
    return " ".join(value.split())


def _percent(entry: dict[str, Any], key: str, path: Path, required: bool) -> float:
    """Accuracies come as strings ("85.32"), sometimes numbers or "85.32%"; NaN when blank."""
    value = entry.get(key)
    if value is None or (isinstance(value, str) and not value.strip()):
        if required:
            raise UserError(f"{path}: missing required field {key!r}")
        return math.nan
    if isinstance(value, bool):
        raise UserError(f"{path}: field {key!r} should be a percentage, got {value!r}")
    try:
        number = float(value.strip().removesuffix("%")) if isinstance(value, str) else float(value)
    except (TypeError, ValueError):
        raise UserError(f"{path}: field {key!r} is not a number: {value!r}") from None
    if not 0.0 <= number <= 100.0:
        raise UserError(f"{path}: field {key!r} should be a percentage in [0, 100], got {value!r}")
    return number


def _flag(entry: dict[str, Any], key: str, path: Path) -> bool:
    """Flags are JSON booleans; absent means False (RobustBench omits ``unreliable`` often)."""
    value = entry.get(key)
    if value is None:
        return False
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.strip().lower() in ("true", "false"):
        return value.strip().lower() == "true"
    raise UserError(f"{path}: field {key!r} should be true or false, got {value!r}")


def _passes(entry: dict[str, Any], path: Path) -> int:
    """Forward passes per prediction; absent means a plain single-pass model."""
    value = entry.get("number_forward_passes")
    if value is None:
        return 1
    if isinstance(value, str) and value.strip().isdigit():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise UserError(
            f"{path}: field 'number_forward_passes' should be a positive integer, got {value!r}"
        )
    return value


def _row(path: Path) -> dict[str, Any]:
    """One JSON file becomes one row; anything we cannot interpret is an error naming the file."""
    try:
        entry = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: cannot read: {exc}") from None
    except json.JSONDecodeError as exc:
        raise UserError(f"{path}: malformed JSON: {exc}") from None
    if not isinstance(entry, dict):
        raise UserError(f"{path}: expected a JSON object, got {type(entry).__name__}")
    return {
        "model_id": path.stem,
        "paper": _text(entry, "name", path),
        "venue": _text(entry, "venue", path),
        "architecture": _text(entry, "architecture", path),
        "clean_acc": _percent(entry, "clean_acc", path, required=True),
        "autoattack_acc": _percent(entry, "autoattack_acc", path, required=True),
        "reported_acc": _percent(entry, "reported", path, required=False),
        "extra_data": _flag(entry, "additional_data", path),
        "forward_passes": _passes(entry, path),
        "unreliable": _flag(entry, "unreliable", path),
        "link": _text(entry, "link", path),
        "eps": _text(entry, "eps", path),
    }


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Fix column order and dtypes so a fresh read and a CSV round trip compare equal."""
    frame = frame.reindex(columns=COLUMNS)
    frame = frame.astype(
        {
            **{c: "str" for c in STR_COLUMNS},
            **{c: "float64" for c in FLOAT_COLUMNS},
            **{c: "bool" for c in BOOL_COLUMNS},
            **{c: "int64" for c in INT_COLUMNS},
        }
    )
    return frame.reset_index(drop=True)


def read_model_info(model_info_dir: Path, dataset: str, threat: str) -> pd.DataFrame:
    """Read one threat model's RobustBench entries, best AutoAttack accuracy first.

    One row per ``<model_info_dir>/<dataset>/<threat>/*.json`` (``model_id`` is the file stem);
    ties in ``autoattack_acc`` are broken by ``model_id`` so the order is reproducible.
    """
    _check_threat(dataset, threat)
    folder = Path(model_info_dir) / dataset / threat
    if not folder.is_dir():
        raise UserError(f"{folder}: no such folder (expected RobustBench model_info/{dataset}/"
                        f"{threat} with one JSON file per model)")
    files = sorted(folder.glob("*.json"))
    if not files:
        raise UserError(f"{folder}: no JSON files found")
    frame = pd.DataFrame([_row(p) for p in files], columns=COLUMNS)
    frame = frame.sort_values(
        ["autoattack_acc", "model_id"], ascending=[False, True], kind="mergesort"
    )
    return _typed(frame)


def _write_atomic(path: Path, data: bytes) -> None:
    """Write to a temporary file beside ``path`` then rename, so readers never see half a file."""
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        os.chmod(tmp, 0o644)  # mkstemp makes 0600; a committed snapshot should be world-readable
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def _csv_bytes(frame: pd.DataFrame) -> bytes:
    """Deterministic CSV bytes (LF line ends, UTF-8) so the checksum depends only on the data."""
    return frame.to_csv(index=False, lineterminator="\n").encode("utf-8")


def build_snapshots(model_info_dir: Path, out_dir: Path, date: str | None = None) -> list[Path]:
    """Write one CSV per threat model and ``SNAPSHOT.json`` (date, source, rows, sha256).

    Everything is read and checked before anything is written, so a bad source file leaves an
    existing snapshot untouched. Returns the written paths, ``SNAPSHOT.json`` last.
    """
    if date is None:
        date = dt.date.today().isoformat()
    try:
        date = dt.date.fromisoformat(date).isoformat()
    except (TypeError, ValueError):
        raise UserError(f"snapshot date must be ISO YYYY-MM-DD, got {date!r}") from None
    model_info_dir = Path(model_info_dir)
    if not model_info_dir.is_dir():
        raise UserError(f"{model_info_dir}: no such folder (expected RobustBench model_info)")
    payloads = {}
    for dataset, threat in sorted(THREATS):
        frame = read_model_info(model_info_dir, dataset, threat)
        payloads[csv_name(dataset, threat)] = (len(frame), _csv_bytes(frame))

    out_dir = Path(out_dir)
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"{out_dir}: cannot create output folder: {exc}") from None
    written = []
    files = {}
    for name, (rows, data) in payloads.items():
        path = out_dir / name
        _write_atomic(path, data)
        written.append(path)
        files[name] = {"rows": rows, "sha256": hashlib.sha256(data).hexdigest()}
    snapshot = {
        "date": date,
        "source": model_info_dir.resolve().name,
        "source_license": "MIT (RobustBench)",
        "units": "percent",
        "files": files,
    }
    path = out_dir / SNAPSHOT_FILE
    _write_atomic(path, (json.dumps(snapshot, indent=2, sort_keys=True) + "\n").encode("utf-8"))
    written.append(path)
    return written


def load_leaderboard(dataset: str, threat: str, root: Path | None = None) -> pd.DataFrame:
    """Load a committed snapshot with the same columns and dtypes as ``read_model_info``."""
    _check_threat(dataset, threat)
    root = DEFAULT_ROOT if root is None else Path(root)
    path = root / csv_name(dataset, threat)
    if not path.is_file():
        raise UserError(f"{path}: leaderboard snapshot missing; build it with: {BUILD_COMMAND}")
    try:
        frame = pd.read_csv(
            path,
            dtype={**{c: "str" for c in STR_COLUMNS}, **{c: "float64" for c in FLOAT_COLUMNS}},
            keep_default_na=False,
            na_values={c: [""] for c in FLOAT_COLUMNS},
        )
    except (OSError, ValueError, pd.errors.ParserError) as exc:
        raise UserError(f"{path}: cannot read leaderboard snapshot: {exc}") from None
    missing = [c for c in COLUMNS if c not in frame.columns]
    if missing:
        raise UserError(f"{path}: missing columns {missing}; rebuild with: {BUILD_COMMAND}")
    for column in BOOL_COLUMNS:
        values = frame[column].astype(str).str.strip()
        if not values.isin(["True", "False"]).all():
            raise UserError(f"{path}: column {column!r} should hold True/False only")
        frame[column] = values == "True"
    try:
        return _typed(frame)
    except (TypeError, ValueError) as exc:
        raise UserError(f"{path}: bad values in leaderboard snapshot: {exc}") from None


def rank_of(acc: float, board: pd.DataFrame, column: str = "autoattack_acc") -> int:
    """1-based rank an entry with accuracy ``acc`` (percent) would take on ``board``.

    An entry ties *behind* existing entries with the same accuracy (it has to beat them to pass
    them), and entries flagged ``unreliable`` do not count, as RobustBench itself says their
    numbers overstate robustness. Rows with no value in ``column`` are ignored.
    """
    if column not in board.columns:
        raise UserError(f"leaderboard has no column {column!r}; columns: {list(board.columns)}")
    acc = float(acc)
    if math.isnan(acc):
        raise ValueError("rank_of: accuracy is NaN")
    values = pd.to_numeric(board[column], errors="coerce")
    if "unreliable" in board.columns:
        values = values[~board["unreliable"].fillna(False).astype(bool)]
    return int((values.dropna() >= acc).sum()) + 1


def main(argv: list[str] | None = None) -> int:
    """Build the committed snapshots from a RobustBench ``model_info`` folder."""
    parser = argparse.ArgumentParser(
        prog="python -m mi_bench.report.leaderboard",
        description="Build RobustBench leaderboard snapshots (CSV + SNAPSHOT.json).",
    )
    parser.add_argument("--model-info", type=Path, required=True,
                        help="RobustBench model_info folder (holds cifar10/Linf, ...)")
    parser.add_argument("--out", type=Path, default=DEFAULT_ROOT,
                        help=f"output folder (default: {DEFAULT_ROOT})")
    parser.add_argument("--date", default=None, help="snapshot date, YYYY-MM-DD (default: today)")
    args = parser.parse_args(argv)
    try:
        written = build_snapshots(args.model_info, args.out, args.date)
    except UserError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    for path in written:
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
