"""Attacks: a shared PGD loop, the suites ``mi-bench attack`` runs and the orchestrator.

- ``registry.py``: ``@register_suite`` and ``@register_member``, addressed by name;
- ``suites.py``: the ``Suite`` interface, pyautoattack as published, PGD with EOT;
- ``builtin.py``: the registered suites (autoattack, eot-pgd, pgd, transfer);
- ``ensemble.py``, ``members.py``: AutoAttack for randomized defenses and its members;
- ``pgd.py``: the PGD loop and losses; ``config.py``: a run's settings and their checks;
- ``checks.py``: validity, sanity flags, masking checks; ``runner.py``: the orchestrator;
- ``binarization.py``, ``binarization_run.py``: the binarization test of attack strength
  (Zimmermann et al. 2022), registered as the suite ``binarization``.

Importing this package registers every suite and member above.
"""

from mi_bench.attacks import (  # noqa: F401  (registers the suites and members)
    binarization_run,
    builtin,
    members,
)
