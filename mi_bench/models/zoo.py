"""Resolve ``--checkpoint`` values to a ready model and its card.

Accepted forms:
- a path to a mi-bench checkpoint (or a plain state dict with ``arch``);
- a shipped checkpoint's name (``prn18w16-mixup-s0``, or an alias such as ``mixup``) found in
  ``MI_BENCH_CHECKPOINTS``, ``./checkpoints`` or the repository's ``checkpoints/``;
- ``autoattack-resnet18``: the trained CIFAR-10 ResNet-18 shipped inside pyautoattack;
- ``robustbench:<name>[:<dataset>:<threat>]``: a RobustBench zoo entry whose checkpoint file is
  already in the model dir (``MI_BENCH_MODEL_DIR``, default ``./models``). Nothing is downloaded.
"""

from __future__ import annotations

import hashlib
import os
import sys
from importlib import resources
from pathlib import Path

from torch import nn

from mi_bench.errors import UserError
from mi_bench.models import NO_NORM
from mi_bench.models.checkpoint import load_checkpoint, safe_torch_load
from mi_bench.plugins import is_reference

ALIASES = {
    "mixup": "prn18w16-mixup-s0",
    "mixup-s1": "prn18w16-mixup-s1",
    "erm": "prn18w16-erm-s0",
    "iat": "prn18w16-iat-s0",
}
DEFAULT_CHECKPOINT = "mixup"


def checkpoint_dirs() -> list[Path]:
    dirs = [Path(os.environ["MI_BENCH_CHECKPOINTS"])] if "MI_BENCH_CHECKPOINTS" in os.environ else []
    return dirs + [Path("checkpoints"), Path(__file__).resolve().parents[2] / "checkpoints"]


def shipped_checkpoints() -> dict[str, Path]:
    """Name -> path of every ``*.pt`` in the checkpoint folders (first folder wins)."""
    found: dict[str, Path] = {}
    for d in checkpoint_dirs():
        for p in sorted(d.glob("*.pt")) if d.is_dir() else []:
            if not p.name.endswith(".resume.pt"):
                found.setdefault(p.stem, p)
    return found


def file_sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def _autoattack_resnet18() -> tuple[nn.Module, dict]:
    ref = resources.files("pyautoattack") / "examples" / "model_test.pt"
    with resources.as_file(ref) as path:
        model, card = load_checkpoint(path, arch="resnet18", num_classes=10,
                                      mean=NO_NORM[0], std=NO_NORM[1])
        card.update(name="autoattack-resnet18", method="standard training (pyautoattack example)",
                    dataset="cifar10", sha256=file_sha256(Path(path)))
    return model, card


def _robustbench(spec: str) -> tuple[nn.Module, dict]:
    from mi_bench._compat import import_robustbench

    import_robustbench()
    from robustbench.model_zoo import model_dicts
    from robustbench.model_zoo.enums import BenchmarkDataset, ThreatModel
    from robustbench.utils import _safe_load_state_dict, rm_substr_from_state_dict

    parts = spec.split(":")[1:]
    name, dataset, threat = (parts + ["cifar10", "Linf"])[:3] if len(parts) < 3 else parts[:3]
    try:
        ds, tm = BenchmarkDataset(dataset), ThreatModel(threat)
        entry = model_dicts[ds][tm][name]
    except (ValueError, KeyError):
        raise UserError(_no_such_model(spec, name, dataset, threat, model_dicts)) from None
    if isinstance(entry["gdrive_id"], list):
        raise UserError(f"{spec}: ensemble entries are not supported")
    path = Path(os.environ.get("MI_BENCH_MODEL_DIR", "models")) / ds.value / tm.value / f"{name}.pt"
    if not path.is_file():
        raise UserError(f"{spec}: checkpoint {path} not found; mi-bench never downloads weights, "
                        "put the file there (or set MI_BENCH_MODEL_DIR)")
    ckpt = safe_torch_load(path)
    state = ckpt.get("state_dict", ckpt) if isinstance(ckpt, dict) else ckpt
    state = rm_substr_from_state_dict(rm_substr_from_state_dict(state, "module."), "model.")
    model = _safe_load_state_dict(entry["model"](), name, state, ds).eval()
    card = {"name": spec, "arch": f"robustbench:{name}", "dataset": ds.value,
            "num_classes": 100 if ds.value == "cifar100" else 10, "method": f"RobustBench {tm.value}",
            "sha256": file_sha256(path)}
    return model, card


def _no_such_model(spec: str, name: str, dataset: str, threat: str, model_dicts) -> str:
    """One line: what is unknown, the closest known entries, and where to list them all."""
    import difflib

    zoo = {(d.value, t.value): list(m) for d, by_threat in model_dicts.items()
           for t, m in by_threat.items()}
    if (dataset, threat) not in zoo:
        known = ", ".join(f"{d}:{t}" for d, t in sorted(zoo))
        return f"{spec}: no RobustBench zoo for {dataset} {threat}; known: {known}"
    names = zoo[(dataset, threat)]
    by_lower = {n.lower(): n for n in names}
    close = [by_lower[c] for c in difflib.get_close_matches(name.lower(), list(by_lower), n=3,
                                                            cutoff=0.0)]
    hint = f"; closest: {', '.join(close)}" if close else ""
    return (f"{spec}: no RobustBench model {name!r} for {dataset} {threat}{hint} (all of them: "
            f"mi-bench leaderboard --dataset {dataset} --threat {threat})")


def load_classifier(spec: str | None = None, arch: str | None = None,
                    arch_kwargs: dict | None = None) -> tuple[nn.Module, dict]:
    """(model in eval mode, card) for any accepted ``--checkpoint`` form; see module docstring.

    ``arch`` (and ``arch_kwargs``) name the architecture of a plain state dict file.
    """
    if spec is not None and not spec.strip():
        raise UserError("--checkpoint is empty; give a path, a shipped name (e.g. mixup), "
                        "autoattack-resnet18 or robustbench:<name>")
    spec = spec or DEFAULT_CHECKPOINT
    if arch is not None and (spec == "autoattack-resnet18" or spec.startswith("robustbench:")):
        raise UserError(f"--arch applies to a plain state dict file, not to {spec}")
    if spec == "autoattack-resnet18":
        return _autoattack_resnet18()
    if spec.startswith("robustbench:"):
        return _robustbench(spec)
    path = Path(spec)
    if not path.is_file() and is_reference(spec):  # a model the user's own function builds
        from mi_bench.models.plugins import load_factory

        return load_factory(spec)
    if not path.is_file():
        shipped = shipped_checkpoints()
        name = ALIASES.get(spec, spec)
        if name not in shipped:
            aliases = {a for a, n in ALIASES.items() if n in shipped}
            known = ", ".join(sorted(set(shipped) | aliases)) or "none"
            raise UserError(f"checkpoint {spec!r} is neither a file nor a shipped checkpoint "
                            f"(shipped: {known}; also autoattack-resnet18, robustbench:<name>)")
        path = shipped[name]
    model, card = load_checkpoint(path, arch=arch, **(arch_kwargs or {}))
    if card.get("epochs", 0) < card.get("epochs_planned", 0):
        print(f"note: {path} is a partial run ({card['epochs']} of {card['epochs_planned']} "
              "epochs)", file=sys.stderr)
    card.update(name=path.stem, path=str(path), sha256=file_sha256(path))
    return model, card
