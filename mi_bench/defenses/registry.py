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

import torch
from torch import nn

from mi_bench.errors import UserError

_REGISTRY: dict[str, Callable[..., Defense]] = {}
_ALIASES: dict[str, str] = {}


class Defense:
    """One configured defense. Subclasses declare ``family`` and ``randomized`` and implement
    the four methods; nothing in the harness reads a defense's name to learn what it is."""

    randomized: ClassVar[bool] = True
    # what kind of defense: 'none', 'mi' (takes the --mi-* flags, cites the MI paper),
    # 'transform' (a random input transform) or 'other'
    family: ClassVar[str] = "other"

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

    # -- the binarization test (Zimmermann et al. 2022): how this defense's binarized form is
    # built. ``task`` is the test's binary task around one image (``images``, ``labels``).
    def binary_inputs(self, x: torch.Tensor, labels: torch.Tensor, task: Any, draws: int,
                      generator: torch.Generator) -> torch.Tensor:
        """What the base model sees of each image in ``draws`` draws of this defense, shape
        (B, draws, C, H, W); ``labels`` are the images' binary labels. The readout is fitted on
        the mean features over these draws. Every defense must state it: a default could only
        guess what the defense does to its input."""
        raise UserError(f"defense {self.name!r} states no binarized form (binary_inputs)")

    def binarized(self, model: nn.Module, task: Any, seed: int, draws: int | None = None,
                  max_batch: int = 64) -> nn.Module:
        """This defense around the binarized classifier ``model`` (features + readout). The
        default keeps the defense as it is, in front of the new model (transforms, none)."""
        return self.wrap(model, seed, draws, max_batch)


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


def unregister(name: str) -> None:
    """Remove a defense a test or plug-in registered (built-ins stay)."""
    cls = _REGISTRY.get(name)
    if cls is not None and not cls.__module__.startswith("mi_bench."):
        del _REGISTRY[name]
        for alias in [a for a, n in _ALIASES.items() if n == name]:
            del _ALIASES[alias]


def defense_family(name: str) -> str | None:
    """The family a registered defense declares (None for a name no module registered)."""
    cls = _REGISTRY.get(_ALIASES.get(name, name))
    return None if cls is None else cls.family


def defense_randomized(name: str) -> bool | None:
    cls = _REGISTRY.get(_ALIASES.get(name, name))
    return None if cls is None else bool(cls.randomized)


def check_draws(draws: int, what: str = "draws") -> None:
    """Every randomized defense's draws setting: at least one draw per prediction."""
    if draws < 1:
        raise UserError(f"{what} must be at least 1, got {draws}")


def defense_names() -> list[str]:
    """Registered names (aliases not included), in registration order."""
    return list(_REGISTRY)


def defense_aliases() -> list[str]:
    """Other names accepted for registered defenses (``gaussian`` for ``gaussian-noise``)."""
    return sorted(_ALIASES)


# the plug-in loader (``plugins.py`` installs itself here, so the registry imports no loader)
_PLUGIN_LOADER: dict[str, Callable] = {}


def set_plugin_loader(reference: Callable[[str], str | None], build: Callable[..., Defense]
                      ) -> None:
    """``reference(name)``: the import path a plug-in name stands for (None: not a plug-in);
    ``build(path, card, options, data_dir)``: the configured plug-in defense."""
    _PLUGIN_LOADER.update(reference=reference, build=build)


def canonical_name(name: str) -> str:
    name = _ALIASES.get(name, name)
    if name not in _REGISTRY:
        reference = _PLUGIN_LOADER.get("reference")
        ref = reference(name) if reference is not None else None  # user code
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
        return _PLUGIN_LOADER["build"](name, card or {}, dict(options or {}), data_dir)
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
    family = "none"

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

    def binary_inputs(self, x: torch.Tensor, labels: torch.Tensor, task: Any, draws: int,
                      generator: torch.Generator) -> torch.Tensor:
        """The base model sees the image itself."""
        return x[:, None]
