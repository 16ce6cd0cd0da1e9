"""Loading user code by reference: ``package.module:Name`` or ``path/to/file.py:Name``.

Why a module of its own: plug-in defenses (``mi_bench.defenses.plugins``) and plug-in model
factories (``mi_bench.models.plugins``) resolve references the same way, and both must turn an
import failure into one ``error:`` line that names what is missing, never a traceback.

A reference's *identity* is what records keep: ``module:Name`` for an importable module, the
absolute ``/path/file.py:Name`` for a file (a class defined in a script run as ``__main__`` gets
its script's path), so two plug-ins that share a short name never share records.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import re
import sys
from pathlib import Path
from typing import Any

from mi_bench.errors import UserError

_MODULE_REF = re.compile(r"^[A-Za-z_][\w.]*:[A-Za-z_][\w.]*$")
_FILE_REF = re.compile(r"^.+\.py:[A-Za-z_][\w.]*$")


def is_reference(text: str) -> bool:
    """``pkg.mod:Name`` or ``some/file.py:Name`` (``robustbench:X`` is the zoo's, not ours)."""
    return not text.startswith("robustbench:") and bool(
        _FILE_REF.match(text) or _MODULE_REF.match(text))


def _load_file(path: Path, what: str) -> Any:
    """Import a ``.py`` file once per absolute path, under a name derived from that path."""
    path = path.resolve()
    if not path.is_file():
        raise UserError(f"{what}: file {path} does not exist")
    name = "mi_bench_plugin_" + hashlib.sha256(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:  # noqa: BLE001 (user code)
        del sys.modules[name]
        raise UserError(f"{what}: importing {path} failed: {exc.__class__.__name__}: "
                        f"{exc}".replace("\n", " ")) from None
    module.__mi_bench_path__ = str(path)
    return module


def resolve(ref: str, what: str) -> tuple[Any, str]:
    """(the object ``ref`` names, its identity); a failure is one UserError naming the part."""
    target, _, attr = ref.rpartition(":")
    if target.endswith(".py"):
        module = _load_file(Path(target), what)
        ident_base = module.__mi_bench_path__
    else:
        try:
            module = importlib.import_module(target)
        except ModuleNotFoundError as exc:
            missing = exc.name or target
            raise UserError(f"{what} {ref}: cannot import module {missing!r} (is it installed, "
                            "or on PYTHONPATH?)") from None
        except Exception as exc:  # noqa: BLE001 (user code)
            raise UserError(f"{what} {ref}: importing {target} failed: "
                            f"{exc.__class__.__name__}: {exc}".replace("\n", " ")) from None
        ident_base = target
    obj: Any = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise UserError(f"{what} {ref}: module {target} has no {attr!r}")
        obj = getattr(obj, part)
    return obj, f"{ident_base}:{attr}"


def identity_of(obj: Any) -> str:
    """The reference that names a class or function defined anywhere (script, file, package)."""
    module = sys.modules.get(getattr(obj, "__module__", ""), None)
    qual = getattr(obj, "__qualname__", type(obj).__qualname__)
    path = getattr(module, "__mi_bench_path__", None)
    if path is None and getattr(module, "__name__", "") == "__main__" and getattr(
            module, "__file__", None):
        path = str(Path(module.__file__).resolve())
    return f"{path}:{qual}" if path else f"{obj.__module__}:{qual}"
