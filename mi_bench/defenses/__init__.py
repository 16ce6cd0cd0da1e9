"""Inference-time defenses by name: ``get_defense("mi-ol", card, options)``.

- ``registry.py``: the ``Defense`` interface, ``register`` and ``get_defense``; ``none``.
- ``mi.py``: Mixup Inference (MI-PL, MI-OL, the combined detector).
- ``baselines.py``: the MI paper's randomized baselines (noise, rotation, Xie, Guo).
- ``plugins.py``: defenses outside mi-bench (``module:Name``, ``file.py:Name``, entry points);
  ``randomness.py``: the check that a defense is as randomized as it says.

Importing this package registers every defense above.
"""

from mi_bench.defenses import baselines, mi, plugins  # noqa: F401  (registers the defenses)
from mi_bench.defenses.registry import (
    Defense,
    canonical_name,
    check_draws,
    defense_aliases,
    defense_family,
    defense_names,
    defense_randomized,
    get_defense,
    register,
)

__all__ = ["Defense", "canonical_name", "check_draws", "defense_aliases", "defense_family",
           "defense_names", "defense_randomized", "get_defense", "register"]
