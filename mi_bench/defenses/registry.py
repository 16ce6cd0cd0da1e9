"""Inference-time defenses addressed by name, in the style of the model registry.

A defense is configured once per run from its name, the model card and the user's options
(``--defense-opt key=value``); it then builds the model as evaluated (``wrap(model, seed)``) and
as attacked (``wrap(model, seed, draws=K)``: K random draws per forward, the attack-time form).
The runner, the evaluation, the cost estimate and the report only use this interface, so adding
a defense is one registered class in one module (and its tests).

``settings()`` is part of a record's identity: it must hold everything that changes a number
(for MI, the partner pool's content hash).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, ClassVar

from torch import nn

from mi_bench.errors import UserError

_REGISTRY: dict[str, Callable[..., Defense]] = {}
_ALIASES: dict[str, str] = {}


class Defense:
    """One configured defense. Subclasses set ``randomized`` and implement the four methods."""

    randomized: ClassVar[bool] = True

    def __init__(self, name: str):
        self.name = name

    def settings(self) -> dict:
        """Everything that changes this defense's output (goes into the record identity)."""
        raise NotImplementedError

    def eval_draws(self) -> int:
        """Random draws averaged per prediction as evaluated (the default attack-time K)."""
        return 1

    def passes_per_call(self, draws: int | None = None) -> int:
        """Base-model forwards per input image for one call (``draws`` None: as evaluated)."""
        raise NotImplementedError

    def wrap(self, model: nn.Module, seed: int, draws: int | None = None,
             max_batch: int = 64) -> nn.Module:
        """The defended model; its randomness comes only from ``seed``; fresh draws per call."""
        raise NotImplementedError

    def passes_per_prediction(self) -> int:
        """The cost a leaderboard reports: base-model forwards per evaluated prediction."""
        return self.passes_per_call(None)

    def label(self) -> str:
        return self.name


def register(*names: str, aliases: tuple[str, ...] = ()) -> Callable:
    """Class decorator: ``@register("gaussian-noise", aliases=("gaussian",))``."""

    def deco(cls):
        for n in names:
            if n in _REGISTRY or n in _ALIASES:
                raise ValueError(f"defense {n!r} registered twice")
            _REGISTRY[n] = cls
        for a in aliases:
            _ALIASES[a] = names[0]
        return cls

    return deco


def defense_names() -> list[str]:
    """Registered names (aliases not included), in registration order."""
    return list(_REGISTRY)


def defense_aliases() -> list[str]:
    """Other names accepted for registered defenses (``gaussian`` for ``gaussian-noise``)."""
    return sorted(_ALIASES)


def canonical_name(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        from mi_bench.defenses.plugins import plugin_reference  # user code

        ref = plugin_reference(name)
        if ref is not None:
            return ref
        raise UserError(f"unknown defense {name!r}; expected one of {', '.join(_REGISTRY)}, "
                        "package.module:Name, path/to/file.py:Name or a mi_bench.defenses "
                        "entry point")
    return name


def get_defense(name: str, card: dict | None = None, options: dict | None = None,
                data_dir: str | None = None) -> Defense:
    """Configure defense ``name`` for the model described by ``card``; options are validated."""
    name = canonical_name(name)
    if name not in _REGISTRY:  # a plug-in, named by its import path
        from mi_bench.defenses.plugins import build_plugin

        return build_plugin(name, card or {}, dict(options or {}), data_dir)
    return _REGISTRY[name](name, card or {}, dict(options or {}), data_dir)


def settings_from_options(cls: type, options: dict, defaults: dict | None = None,
                          what: str = "defense") -> Any:
    """Build the frozen settings dataclass ``cls`` from string or typed options, checked by key
    and type, so that ``--defense-opt sigma=x`` fails on one line naming the key."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    values = dict(defaults or {})
    for key, raw in options.items():
        if key not in fields:
            raise UserError(f"{what} has no option {key!r}; its options: {', '.join(fields)}")
        values[key] = _coerce(raw, fields[key], key, what)
    obj = cls(**values)
    if hasattr(obj, "validate"):
        obj.validate()
    return obj


def _coerce(raw: Any, field: dataclasses.Field, key: str, what: str) -> Any:
    kind = field.type if isinstance(field.type, str) else getattr(field.type, "__name__", "")
    if not isinstance(raw, str):
        return raw
    try:
        if kind == "int":
            return int(raw)
        if kind == "float":
            return float(raw)
        if kind == "bool":
            if raw.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(raw)
            return raw.lower() in ("true", "1", "yes")
    except ValueError:
        raise UserError(f"{what} option {key}={raw!r}: expected {kind}") from None
    return raw


@register("none")
class NoDefense(Defense):
    """The bare classifier: deterministic, one pass per prediction."""

    randomized = False

    def __init__(self, name: str, card: dict, options: dict, data_dir: str | None = None):
        super().__init__(name)
        if options:
            raise UserError(f"defense 'none' takes no options, got {', '.join(options)}")

    def settings(self) -> dict:
        return {}

    def passes_per_call(self, draws: int | None = None) -> int:
        return 1

    def wrap(self, model: nn.Module, seed: int, draws: int | None = None,
             max_batch: int = 64) -> nn.Module:
        return model
