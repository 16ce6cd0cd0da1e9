"""The result store: one record per (checkpoint, defense, attack, eps, seed, n), never overwritten.

Layout under the store folder::

    records/<key>.json      settings, accuracies, costs, flags, package versions
    records/<key>.npz       per-example correctness, (draws, n) bool: clean and adv (scoring
                            draws), clean_select and adv_select (selection draws), chosen
    partial/<key>/NNNNN.npz finished batches of a run in progress (removed when it completes)
    clean/<key>.npz         clean correctness of one batch under one defense and seed, shared by
                            every record that evaluates the same draws (attack and eps differ)

Every file is written atomically (temp file + rename), so a killed run leaves either a whole
batch or nothing; rerunning the same command resumes at the first missing batch.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import shutil
import tempfile
import zipfile
from importlib import metadata
from pathlib import Path

import numpy as np
import pandas as pd

from mi_bench.errors import UserError
from mi_bench.files import atomic_write_bytes, atomic_write_text

# Part of every record's identity. Bump it whenever an attack's or the evaluation's behaviour, or
# the identity itself, changes, so that older records are recomputed instead of reused.
#   1: the first committed results (no protocol field)
#   2: defenses by registry (name + settings, MI's partner pool by content hash); a cached clean
#      evaluation carries its cost; attack_draws replaces attack_mi_samples
#   3: selection and scoring draws (``attacks/draws.py``): every choice reads S selection
#      draws, every reported number R fresh scoring draws seeded by the record's identity; the
#      robust score is the scoring-draw accuracy at the candidate (the clean image or a point)
#      lowest on selection draws; ensemble members keep their own scores; APGD-T attacks every
#      point. Deterministic records carry over unchanged (``mi-bench migrate``).
PROTOCOL = 3


def dotted_get(d: dict, dotted: str):
    """``dotted_get(record, "attack.eot_iter")``: a nested field, or None where it is absent."""
    for part in dotted.split("."):
        d = d.get(part) if isinstance(d, dict) else None
    return d


def record_key(identity: dict) -> str:
    """Stable short hash of everything that makes a result what it is."""
    blob = json.dumps(identity, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(blob.encode()).hexdigest()[:16]


def _npz_bytes(arrays: dict) -> bytes:
    buf = io.BytesIO()
    np.savez_compressed(buf, **arrays)
    return buf.getvalue()


def check_output_dir(path: str | Path, what: str = "--out") -> Path:
    """The one place that checks an output folder: it exists (or is made) and takes a file.

    Called after every option was validated and before any work, so an unwritable ``--out``
    fails at once instead of after an hour of attacks.
    """
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise UserError(f"{what} {path} is a file, expected a folder")
    try:
        path.mkdir(parents=True, exist_ok=True)
        fd, probe = tempfile.mkstemp(dir=path, prefix=".write-check-")
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise UserError(f"{what} {path} is not writable ({exc.strerror or exc}); choose another "
                        "folder") from None
    return path


def _damaged(path: Path, exc: Exception) -> UserError:
    return UserError(f"{path}: damaged result file ({exc.__class__.__name__}); delete "
                     f"{path.with_suffix('.*')} and rerun the command that made it")


def _read_json(path: Path) -> dict:
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise _damaged(path, exc) from None
    if not isinstance(rec, dict) or "key" not in rec:
        raise _damaged(path, ValueError("not a record"))
    return rec


def package_versions() -> dict:
    out = {}
    for name in ("mi-bench", "torch", "torchvision", "pyautoattack", "robustbench", "numpy"):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            out[name] = None
    return out


class ResultStore:
    """Records and in-progress batches under one folder."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        if self.root.exists() and not self.root.is_dir():
            raise UserError(f"result store {self.root} is a file, expected a folder")

    def record_path(self, key: str) -> Path:
        return self.root / "records" / f"{key}.json"

    def has(self, key: str) -> bool:
        return self.record_path(key).is_file()

    def load(self, key: str) -> dict:
        rec = _read_json(self.record_path(key))
        self.load_examples(key)  # a record is whole only with its per-example arrays
        return rec

    def load_examples(self, key: str) -> dict[str, np.ndarray]:
        path = self.root / "records" / f"{key}.npz"
        try:
            with np.load(path) as z:
                return {k: z[k] for k in z.files}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
            raise _damaged(path, exc) from None

    def check(self) -> None:
        """Every record readable and with its arrays; run before work, so damage (a truncated
        file, a lost .npz) is reported at once, naming the file."""
        folder = self.root / "records"
        for p in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            _read_json(p)
            if not p.with_suffix(".npz").is_file():
                raise _damaged(p.with_suffix(".npz"), FileNotFoundError("missing"))

    # -- batches of a run in progress -------------------------------------------------------
    def _partial(self, key: str) -> Path:
        return self.root / "partial" / key

    def save_batch(self, key: str, index: int, arrays: dict) -> None:
        atomic_write_bytes(self._partial(key) / f"{index:05d}.npz", _npz_bytes(arrays))

    def done_batches(self, key: str) -> dict[int, dict]:
        out = {}
        folder = self._partial(key)
        for p in sorted(folder.glob("[0-9]*.npz")) if folder.is_dir() else []:
            try:
                with np.load(p) as z:
                    out[int(p.stem)] = {k: z[k] for k in z.files}
            except (OSError, ValueError, EOFError, zipfile.BadZipFile):
                p.unlink(missing_ok=True)  # a damaged unfinished batch is simply redone
        return out

    # -- clean evaluations shared between records -------------------------------------------
    def load_clean(self, key: str) -> dict[str, np.ndarray] | None:
        """The cached clean arrays (``select``, ``score``) and ``forwards``, their cost; None if
        absent (or unreadable: recompute)."""
        path = self.root / "clean" / f"{key}.npz"
        if not path.is_file():
            return None
        try:
            with np.load(path) as z:
                out = {k: z[k] for k in z.files}
            return out if {"select", "score", "forwards"} <= set(out) else None
        except (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile):
            return None  # a cache entry is only a shortcut: a damaged one is recomputed

    def save_clean(self, key: str, arrays: dict[str, np.ndarray], forwards: int) -> None:
        atomic_write_bytes(self.root / "clean" / f"{key}.npz",
                           _npz_bytes({**arrays, "forwards": np.int64(forwards)}))

    # -- finished records --------------------------------------------------------------------
    def write(self, key: str, record: dict, examples: dict[str, np.ndarray]) -> Path:
        """Examples first, then the record (its presence marks completion), then cleanup."""
        atomic_write_bytes(self.root / "records" / f"{key}.npz", _npz_bytes(examples))
        atomic_write_text(self.record_path(key), json.dumps(record, indent=1, sort_keys=True))
        shutil.rmtree(self._partial(key), ignore_errors=True)
        return self.record_path(key)

    def records(self) -> list[dict]:
        folder = self.root / "records"
        return [_read_json(p) for p in sorted(folder.glob("*.json"))] if folder.is_dir() else []

    def frame(self) -> pd.DataFrame:
        """All records flattened to one row each (nested settings as dotted columns)."""
        recs = self.records()
        return pd.json_normalize(recs) if recs else pd.DataFrame()
