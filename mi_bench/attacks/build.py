"""From the ``attack`` command's options to checked ``AttackConfig``s, one per eps and surrogate.

Why here and not in the command: ``mi-bench attack`` and ``mi_bench.benchmark`` must build the
same configs from the same settings (one record for one setting) and refuse bad ones with the
same one-line messages.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from mi_bench.attacks.config import AttackConfig
from mi_bench.errors import UserError
from mi_bench.options import parse_eps, parse_eps_list, parse_seeds

# Published adaptive attacks as named settings of eot-pgd. tramer: Tramer, Carlini, Brendel and
# Madry (2020) on MI, as W. Brendel ran it (robustness_workshop, 02_mixup/mixup_attack.ipynb):
# PGD-50, step 0.5/255, MI-OL with 15 partners inside every forward, one gradient per step.
PRESETS = {"tramer": {"steps": 50, "step_size": "0.5/255", "eot_iter": 1, "attack_draws": 15,
                      "loss": "ce"}}


def apply_preset(preset: str | None, suite: str, given: set[str],
                 settings: dict[str, Any]) -> dict[str, Any]:
    """``settings`` with a preset's values; ``given``: the settings the user set explicitly."""
    if preset is None:
        return settings
    if preset not in PRESETS:
        raise UserError(f"unknown attack preset {preset!r}; expected one of {sorted(PRESETS)}")
    if suite != "eot-pgd":
        raise UserError(f"--attack-preset {preset} is an eot-pgd setting; add --suite eot-pgd")
    fixed = [f"--{k.replace('_', '-')}" for k in PRESETS[preset] if k in given]
    if fixed:
        raise UserError(f"--attack-preset {preset} sets {', '.join(fixed)}; drop them")
    return {**settings, **PRESETS[preset]}


def build_configs(*, checkpoint: str | None, arch: str | None, arch_kwargs: dict,
                  defense: str, defense_opts: dict, suite: str, eps_list: str, norm: str,
                  n_examples: int, seeds: str, surrogate: str | None = None,
                  aa_attacks: str | None = None, step_size: str | None = None,
                  sanity: bool = True, **settings: Any) -> list[AttackConfig]:
    """Every config of one ``attack`` invocation (eps x surrogates), each validated.

    Text options (``eps_list``, ``seeds``, ``surrogate``, ``aa_attacks``, ``step_size``) are
    parsed here, so their errors read the same from the command line and from Python.
    """
    surrogates = [s.strip() for s in surrogate.split(",")] if surrogate else [None]
    if any(s == "" for s in surrogates):
        raise UserError(f"bad --surrogate {surrogate!r}; expected comma-separated checkpoints")
    make = partial(
        AttackConfig, checkpoint=checkpoint, arch=arch, arch_kwargs=arch_kwargs,
        defense=defense, suite=suite, norm=norm, n_examples=n_examples,
        seeds=parse_seeds(seeds), defense_opts=defense_opts,
        aa_attacks=aa_attacks.split(",") if aa_attacks else None,
        step_size=parse_eps(step_size) if step_size else None, sanity=sanity, **settings)
    configs = [make(eps=eps, eps_label=label, surrogate=sur)
               for label, eps in parse_eps_list(eps_list) for sur in surrogates]
    for cfg in configs:
        cfg.validate()
    return configs


def check_surrogates(configs: list[AttackConfig]) -> None:
    """A bad surrogate fails now, not after the first eps was attacked."""
    from mi_bench.models.zoo import load_classifier

    for sur in dict.fromkeys(c.surrogate for c in configs):
        if sur is not None:
            load_classifier(sur)
