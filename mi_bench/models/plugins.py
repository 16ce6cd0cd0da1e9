"""Models the user builds: ``--checkpoint package.module:factory`` and ``benchmark(model=module)``.

Why: a researcher's model is rarely a mi-bench checkpoint file. A factory (a function with no
required arguments) returns an ``nn.Module`` on [0, 1] images, or ``(module, card)`` with card
fields such as ``dataset``, ``num_classes`` and ``name``. Records identify such a model by its
reference and a hash of its weights (``state_dict``), so retraining it, or another factory of the
same name, makes new records instead of reusing old ones.
"""

from __future__ import annotations

import hashlib
from typing import Any

import torch
from torch import nn

from mi_bench.errors import UserError
from mi_bench.plugins import resolve


def weights_sha256(model: nn.Module) -> str:
    """Hash of every parameter and buffer (name, dtype, shape, bytes): the model's content."""
    h = hashlib.sha256(type(model).__qualname__.encode())
    for name, t in sorted(model.state_dict().items()):
        t = t.detach().cpu().contiguous()
        h.update(f"{name}:{t.dtype}:{tuple(t.shape)}".encode())
        h.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return h.hexdigest()


def card_for_module(model: Any, name: str, card: dict | None = None,
                    dataset: str = "cifar10") -> tuple[nn.Module, dict]:
    """(model in eval mode, card) for a module built in Python; checked to take 3x32x32 images."""
    if not isinstance(model, nn.Module):
        raise UserError(f"model {name}: expected a torch.nn.Module, got {type(model).__name__}")
    model = model.eval()
    card = dict(card or {})
    card.setdefault("dataset", dataset)
    if "num_classes" not in card:
        try:
            with torch.no_grad():
                out = model(torch.zeros(1, 3, 32, 32, device=_device_of(model)))
        except Exception as exc:  # noqa: BLE001 (user code)
            raise UserError(f"model {name}: a forward on a 1x3x32x32 image in [0, 1] failed "
                            f"({exc.__class__.__name__}: {exc})".replace("\n", " ")) from None
        if out.ndim != 2:
            raise UserError(f"model {name}: expected logits of shape (batch, classes), got "
                            f"{tuple(out.shape)}")
        card["num_classes"] = int(out.shape[1])
    card.setdefault("name", name)
    card.setdefault("arch", type(model).__qualname__)
    card.setdefault("method", "user model")
    card["sha256"] = weights_sha256(model)
    return model, card


def _device_of(model: nn.Module) -> torch.device:
    p = next(iter(model.parameters()), None)
    return p.device if p is not None else torch.device("cpu")


def load_factory(spec: str) -> tuple[nn.Module, dict]:
    """``--checkpoint pkg.mod:factory`` (or ``file.py:factory``): call it, check what it built."""
    factory, ident = resolve(spec, "checkpoint")
    if not callable(factory):
        raise UserError(f"checkpoint {spec}: {type(factory).__name__} is not callable; expected "
                        "a function that returns an nn.Module")
    try:
        built = factory()
    except TypeError as exc:
        raise UserError(f"checkpoint {spec}: the factory must take no required argument "
                        f"({exc})") from None
    except Exception as exc:  # noqa: BLE001 (user code)
        raise UserError(f"checkpoint {spec}: the factory failed: {exc.__class__.__name__}: "
                        f"{exc}".replace("\n", " ")) from None
    model, card = built if isinstance(built, tuple) and len(built) == 2 else (built, {})
    if not isinstance(card, dict):
        raise UserError(f"checkpoint {spec}: the factory's second value must be a card dict")
    card = {**card, "name": ident, "factory": ident}
    return card_for_module(model, ident, card)
