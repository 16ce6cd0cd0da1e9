"""What one attack run is asked to do, checked before anything is loaded.

A bad setting fails here with a one-line error, not after minutes of attacking.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from mi_bench.attacks.pgd import LOSSES, NORMS
from mi_bench.attacks.registry import get_suite, member_names, suite_names
from mi_bench.attacks.suites import AA_ATTACKS, AA_VERSIONS
from mi_bench.errors import UserError

# the largest meaningful radius: the diameter of [0, 1]^(3x32x32) in each norm
MAX_EPS = {"Linf": 1.0, "L2": math.sqrt(3 * 32 * 32)}


@dataclass
class AttackConfig:
    checkpoint: str | None = None
    arch: str | None = None  # a plain state dict's architecture
    arch_kwargs: dict = field(default_factory=dict)
    defense: str = "mi-ol"
    suite: str = "autoattack"
    eps: float = 8 / 255
    eps_label: str = "8/255"
    norm: str = "Linf"
    n_examples: int = 100
    seeds: list[int] = field(default_factory=lambda: [0])
    eval_repeats: int = 5  # R: scoring draws, the only ones a reported number reads
    select_repeats: int = 8  # S: selection draws, the only ones a choice reads (draws.py)
    batch_size: int = 50
    data_dir: str | None = None
    defense_opts: dict = field(default_factory=dict)  # e.g. MI's n_samples, lam, pool_split
    attack_draws: int | None = None  # K draws (MI partners) per attack forward (default: eval's)
    max_batch: int = 64
    # autoattack
    aa_version: str | None = None  # default: standard on deterministic models, rand on MI
    aa_attacks: list[str] | None = None
    # PGD family
    steps: int | None = None
    step_size: float | None = None
    loss: str = "ce"
    restarts: int = 1
    eot_iter: int | None = None
    targeted: bool = False
    variant: str = "pgd"
    surrogate: str | None = None
    sanity: bool = True
    sanity_n: int = 16
    # binarization: the suite it tests and the test's settings (attacks/binarization.py)
    inner_attack: str | None = None
    binarization: dict = field(default_factory=dict)

    def validate(self) -> None:
        if self.suite not in suite_names():
            raise UserError(f"unknown suite {self.suite!r}; expected one of "
                            f"{tuple(suite_names())}")
        if self.norm not in NORMS:
            raise UserError(f"unknown norm {self.norm!r}; expected one of {NORMS}")
        if not 0 < self.eps <= MAX_EPS[self.norm]:
            raise UserError(f"eps {self.eps_label} ({self.eps:.6g}) is outside (0, "
                            f"{MAX_EPS[self.norm]:.4g}] for {self.norm}: images live in [0, 1]")
        for name in ("n_examples", "batch_size", "eval_repeats", "select_repeats", "max_batch",
                     "restarts",
                     "sanity_n"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1, got "
                                f"{getattr(self, name)}")
        if not self.seeds or len(set(self.seeds)) != len(self.seeds) or min(self.seeds) < 0:
            raise UserError(f"--seeds must be distinct integers >= 0, got {self.seeds}")
        if self.step_size is not None and self.step_size <= 0:
            raise UserError(f"--step-size must be positive, got {self.step_size}")
        if self.aa_version is not None and self.aa_version not in AA_VERSIONS:
            raise UserError(f"unknown --aa-version {self.aa_version!r}; expected {AA_VERSIONS}")
        if self.aa_version == "custom" and not self.aa_attacks:
            raise UserError("--aa-version custom needs --aa-attacks, e.g. apgd-ce,apgd-dlr")
        if self.aa_attacks:
            members = member_names()
            known = members if self.aa_version == "ensemble" else AA_ATTACKS + members
            bad = [a for a in self.aa_attacks if a not in known]
            if bad:
                raise UserError(f"unknown AutoAttack attack(s) {bad}; expected {known}")
        if self.loss not in LOSSES:
            raise UserError(f"unknown loss {self.loss!r}; expected one of {LOSSES}")
        if self.variant not in ("pgd", "apgd"):
            raise UserError(f"unknown variant {self.variant!r}; expected 'pgd' or 'apgd'")
        if self.variant == "apgd" and self.targeted:
            raise UserError("--variant apgd is untargeted; use --variant pgd with --targeted")
        entry = get_suite(self.suite)
        if entry.target == "surrogate" and not self.surrogate:
            raise UserError(f"--suite {self.suite} needs --surrogate (a checkpoint to attack)")
        if entry.check is not None:
            entry.check(self)  # the suite's own settings (binarization: --inner-attack, ...)
        elif self.inner_attack is not None or self.binarization:
            raise UserError("--inner-attack and --binarization-opt apply to --suite "
                            "binarization")
        for name in ("steps", "eot_iter", "attack_draws"):
            v = getattr(self, name)
            if v is not None and v < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
