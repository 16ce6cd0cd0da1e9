"""Attacks: a shared PGD loop and the suites that ``mi-bench attack`` runs."""
