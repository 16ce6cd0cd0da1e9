"""The one place that adapts third-party packages to each other.

robustbench 1.1.1 still does ``from autoattack import AutoAttack`` (and ``autoattack.state``),
but AutoAttack is installed as the PyPI package ``pyautoattack``. We register pyautoattack
under the old name before importing robustbench. (robustbench also needs ``setuptools<81`` for
``pkg_resources``; pyproject.toml pins it.)
"""

from __future__ import annotations

import importlib
import pkgutil
import sys
from types import ModuleType


def alias_autoattack() -> None:
    """Make ``import autoattack[.submodule]`` resolve to pyautoattack's modules."""
    if "autoattack" in sys.modules:
        return
    import pyautoattack

    sys.modules["autoattack"] = pyautoattack
    for info in pkgutil.iter_modules(pyautoattack.__path__):
        if info.name.endswith(("_tf", "_tf2")):
            continue  # TensorFlow adapters: not needed, and TensorFlow is not installed
        sys.modules[f"autoattack.{info.name}"] = importlib.import_module(
            f"pyautoattack.{info.name}")


def import_robustbench() -> ModuleType:
    """``robustbench`` with the alias in place."""
    alias_autoattack()
    import warnings

    # robustbench's import warns about torch.jit and pkg_resources deprecations: library noise
    # that would bury mi-bench's own one-line messages
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import robustbench
        import robustbench.utils

    return robustbench
