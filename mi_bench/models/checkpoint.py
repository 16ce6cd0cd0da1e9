"""Checkpoint files: weights plus a model card, written atomically, loaded without running code.

A mi-bench checkpoint is a dict ``{"format", "card", "state_dict"}`` saved with ``torch.save``
and read back with ``weights_only=True``. The card says what the weights are (architecture,
classes, normalization), how they were made (method, settings, seed, epochs, data hash, command)
and how good they are (clean accuracy measured on the full test split).
"""

from __future__ import annotations

import io
import pickle
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from mi_bench.errors import UserError
from mi_bench.files import atomic_write_bytes
from mi_bench.models import Normalized, create_model, get_spec

FORMAT = "mi-bench-checkpoint/1"


def atomic_torch_save(obj: Any, path: str | Path) -> None:
    """Save so that a reader never sees a half-written file, even if we are killed mid-write."""
    buf = io.BytesIO()
    torch.save(obj, buf)
    atomic_write_bytes(Path(path), buf.getvalue())


def safe_torch_load(path: str | Path) -> Any:
    """``torch.load(weights_only=True)`` with one-line errors for missing or unsafe files."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"checkpoint {path} does not exist")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        text = str(exc)
        if "GLOBAL" not in text and "global" not in text:  # not code, just not a checkpoint
            raise UserError(f"{path}: not a readable torch checkpoint") from None
        detail = next((ln for ln in text.splitlines() if "GLOBAL" in ln or "global" in ln), "")
        raise UserError(f"{path}: refused to load, it holds objects other than tensors and plain "
                        f"containers (weights_only=True): {detail.strip()[:160]}") from None
    except (RuntimeError, EOFError, zipfile.BadZipFile, OSError) as exc:
        raise UserError(f"{path}: not a readable torch checkpoint ({exc.__class__.__name__}: "
                        f"{str(exc)[:200]})") from None


def save_checkpoint(path: str | Path, model: Normalized, card: dict) -> None:
    """Write weights and card; ``card`` must at least name ``arch`` and ``num_classes``."""
    for key in ("arch", "num_classes", "mean", "std"):
        if key not in card:
            raise ValueError(f"model card lacks {key!r}")
    state = {k: v.detach().cpu() for k, v in model.net.state_dict().items()}
    atomic_torch_save({"format": FORMAT, "card": card, "state_dict": state}, path)


def _load_state(net: nn.Module, state: dict, path: Path, arch: str) -> None:
    try:
        net.load_state_dict(state, strict=True)
    except RuntimeError as exc:
        lines = [ln.strip() for ln in str(exc).splitlines() if ln.strip()]
        detail = "; ".join(lines[1:3]) if len(lines) > 1 else lines[0]
        raise UserError(f"{path}: weights do not fit architecture {arch!r}: {detail[:300]}") from None


def load_checkpoint(path: str | Path, arch: str | None = None, num_classes: int | None = None,
                    mean=None, std=None, **arch_kwargs) -> tuple[Normalized, dict]:
    """Load a mi-bench checkpoint, or a plain state dict when ``arch`` is given.

    A plain state dict is how the official MI code published its models (``arch='mi-resnet'``).
    Explicit ``arch``/``num_classes`` must agree with the card of a mi-bench checkpoint;
    ``mean``/``std`` override the architecture's normalization for a plain state dict.
    """
    path = Path(path)
    obj = safe_torch_load(path)
    if isinstance(obj, dict) and obj.get("format") == FORMAT:
        card = dict(obj["card"])
        if arch is not None and arch != card["arch"]:
            raise UserError(f"{path}: card says architecture {card['arch']!r}, asked for {arch!r}")
        if num_classes is not None and num_classes != card["num_classes"]:
            raise UserError(f"{path}: card says {card['num_classes']} classes, asked for "
                            f"{num_classes}")
        state = obj["state_dict"]
    elif isinstance(obj, dict) and all(isinstance(v, torch.Tensor) for v in obj.values()):
        if arch is None:
            from mi_bench.models import list_models

            raise UserError(f"{path}: a plain state dict without a model card; pass its "
                            f"architecture with --arch ({', '.join(list_models())})")
        spec = get_spec(arch)
        state = {k.removeprefix("module."): v for k, v in obj.items()}
        card = {"arch": arch, "arch_kwargs": arch_kwargs, "num_classes": num_classes or
                _guess_classes(state), "mean": list(mean or spec.mean), "std": list(std or spec.std),
                "method": "unknown (plain state dict)", "source": str(path)}
    else:
        raise UserError(f"{path}: neither a mi-bench checkpoint nor a plain state dict")
    bad = [k for k, v in state.items() if torch.is_tensor(v) and v.is_floating_point()
           and not torch.isfinite(v).all()]
    if bad:
        raise UserError(f"{path}: {len(bad)} weight tensor(s) hold NaN or inf (first: {bad[0]}); "
                        "a diverged or damaged checkpoint gives meaningless accuracies")
    model = create_model(card["arch"], card["num_classes"], mean=tuple(card["mean"]),
                         std=tuple(card["std"]), **card.get("arch_kwargs", {}))
    _load_state(model.net, state, path, card["arch"])
    model.eval()
    return model, card


def _guess_classes(state: dict) -> int:
    """Class count from the last 1-D bias in the state dict (the classifier's)."""
    biases = [v for k, v in state.items() if k.endswith("bias") and v.ndim == 1]
    return int(biases[-1].shape[0]) if biases else 10
