"""Plug-in defenses: a defense in the user's own code, found without editing mi-bench.

Three ways to name one (``--defense``, a sweep's ``defenses``, ``mi_bench.benchmark``):

- ``package.module:Name`` (importable) or ``path/to/file.py:Name``;
- an entry point of group ``mi_bench.defenses`` in the user's ``pyproject.toml``
  (``[project.entry-points."mi_bench.defenses"] my-defense = "pkg.mod:Name"``);
- in Python, the class or a configured instance itself.

Why an adapter: records need a name that no other plug-in can share (the import path, see
``mi_bench.plugins``), and a plug-in need not subclass ``Defense``. ``PluginDefense`` checks the
protocol once, names what is missing in one line, and gives the runner the full ``Defense``
interface. Two constructor styles are accepted: the built-in one, ``Cls(name, card, options,
data_dir)``, and plain keyword settings, ``Cls(**options)`` (string options from the command line
are converted to the type of each default).
"""

from __future__ import annotations

import inspect
import json
from importlib import metadata
from typing import Any

from torch import nn

from mi_bench.defenses.registry import Defense, set_plugin_loader
from mi_bench.errors import UserError
from mi_bench.plugins import identity_of, is_reference, resolve

GROUP = "mi_bench.defenses"
REQUIRED = ("settings", "passes_per_call", "wrap")


def entry_points() -> dict[str, str]:
    """Entry-point name -> ``module:Name`` for every installed ``mi_bench.defenses`` plug-in."""
    return {ep.name: ep.value for ep in metadata.entry_points(group=GROUP)}


def plugin_reference(name: str) -> str | None:
    """The identity of the plug-in ``name`` refers to (importing it), or None if it names none."""
    eps = entry_points()
    if name in eps:
        ref = eps[name].replace(" ", "")
        what = f"defense entry point {name!r} ({GROUP})"
    elif is_reference(name):
        ref, what = name, "defense"
    else:
        return None
    obj, ident = resolve(ref, what)
    check_class(obj, ref)
    return ident


def check_class(obj: Any, ref: str) -> None:
    """A plug-in must be a class with the ``Defense`` methods; say which are missing."""
    if not inspect.isclass(obj):
        raise UserError(f"defense {ref} is a {type(obj).__name__}, not a class; a plug-in "
                        "defense is a class with settings(), passes_per_call(), wrap() and "
                        "randomized")
    missing = [m for m in REQUIRED if not callable(getattr(obj, m, None))
               or getattr(obj, m) is getattr(Defense, m)]
    if not isinstance(getattr(obj, "randomized", None), bool) and not isinstance(
            inspect.getattr_static(obj, "randomized", None), property):
        missing.append("randomized (a bool)")
    if missing:
        raise UserError(f"defense {ref} breaks the Defense protocol: missing "
                        f"{', '.join(missing)}")


def _builtin_style(cls: type) -> bool:
    params = list(inspect.signature(cls).parameters)
    return params[:3] == ["name", "card", "options"]


def _convert(value: Any, default: Any, key: str, ref: str) -> Any:
    """A command-line string to the type of the keyword's default (bool, int, float)."""
    if not isinstance(value, str) or isinstance(default, str) or default is None:
        return value
    try:
        if isinstance(default, bool):
            if value.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError(value)
            return value.lower() in ("true", "1", "yes")
        return type(default)(value)
    except ValueError:
        raise UserError(f"defense {ref} option {key}={value!r}: expected "
                        f"{type(default).__name__}") from None


def instantiate(cls: type, ident: str, card: dict, options: dict,
                data_dir: str | None) -> PluginDefense:
    """Configure plug-in class ``cls`` for the model described by ``card``."""
    check_class(cls, ident)
    if _builtin_style(cls):
        obj = cls(ident, card, options, data_dir)
    else:
        params = inspect.signature(cls).parameters
        takes_any = any(p.kind is p.VAR_KEYWORD for p in params.values())
        unknown = [k for k in options if k not in params and not takes_any]
        if unknown:
            raise UserError(f"defense {ident} has no option {unknown[0]!r}; its options: "
                            f"{', '.join(params) or 'none'}")
        kwargs = {k: _convert(v, params[k].default if k in params else None, k, ident)
                  for k, v in options.items()}
        try:
            obj = cls(**kwargs)
        except TypeError as exc:
            raise UserError(f"defense {ident}: {exc}") from None
    return PluginDefense(obj, ident)


def build_plugin(ident: str, card: dict, options: dict, data_dir: str | None) -> PluginDefense:
    """``get_defense``'s path for a name that is not registered (``ident`` from
    ``plugin_reference``)."""
    cls, ident = resolve(ident, "defense")
    return instantiate(cls, ident, card, options, data_dir)


def from_python(defense: Any, card: dict, options: dict, data_dir: str | None) -> Defense:
    """``benchmark(defense=...)``: a class or a configured instance (options only with a class)."""
    if inspect.isclass(defense):
        return instantiate(defense, identity_of(defense), card, options, data_dir)
    if options:
        raise UserError("defense_opts configure a defense class or name; this defense is an "
                        "instance, already configured")
    check_class(type(defense), identity_of(type(defense)))
    return PluginDefense(defense, identity_of(type(defense)))


class PluginDefense(Defense):
    """A user's defense seen through the ``Defense`` interface, named by its import path."""

    def __init__(self, inner: Any, ident: str):
        super().__init__(ident)
        self.inner = inner
        if not isinstance(inner.randomized, bool):
            raise UserError(f"defense {ident}: randomized must be True or False, got "
                            f"{inner.randomized!r}")
        settings = inner.settings()
        if not isinstance(settings, dict):
            raise UserError(f"defense {ident}: settings() must return a dict, got "
                            f"{type(settings).__name__}")
        try:
            json.dumps(settings, sort_keys=True)
        except (TypeError, ValueError) as exc:
            raise UserError(f"defense {ident}: settings() must be JSON values (they go into "
                            f"the record identity): {exc}") from None
        self._settings = settings

    @property
    def randomized(self) -> bool:  # type: ignore[override]
        return bool(self.inner.randomized)

    def settings(self) -> dict:
        return dict(self._settings)

    def eval_draws(self) -> int:
        own = getattr(self.inner, "eval_draws", None)
        return int(own()) if callable(own) else 1

    def passes_per_call(self, draws: int | None = None) -> int:
        return int(self.inner.passes_per_call(draws))

    def passes_per_prediction(self) -> int:
        own = getattr(self.inner, "passes_per_prediction", None)
        return int(own()) if callable(own) else self.passes_per_call(None)

    def wrap(self, model: nn.Module, seed: int, draws: int | None = None,
             max_batch: int = 64) -> nn.Module:
        return self.inner.wrap(model, seed, draws, max_batch)

    def label(self) -> str:
        """The plug-in's own ``label()`` if it has one, else its short name and settings."""
        own = getattr(type(self.inner), "label", None)
        if callable(own) and own is not Defense.label:
            return str(self.inner.label())
        short = self.name.rpartition(":")[2]
        opts = ", ".join(f"{k}={v}" for k, v in self._settings.items())
        return f"{short} ({opts})" if opts else short


set_plugin_loader(plugin_reference, build_plugin)
