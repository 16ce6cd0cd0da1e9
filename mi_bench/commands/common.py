"""Option parsing shared by the subcommands."""

from __future__ import annotations

import shlex
import sys
from fractions import Fraction

from mi_bench.errors import UserError


def parse_eps(value: str) -> float:
    """``8/255``, ``0.5/255`` or ``0.031`` -> float (eps is in pixel units of [0, 1] images)."""
    try:
        num, _, den = value.strip().partition("/")
        if "/" in den:
            raise ValueError(value)
        eps = float(Fraction(num) / Fraction(den or 1))
    except (ValueError, ZeroDivisionError):
        raise UserError(f"bad eps {value!r}; expected a number or a fraction like 8/255") from None
    if eps < 0:
        raise UserError(f"eps must be non-negative, got {value}")
    return eps


def parse_int_list(value: str, what: str) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"bad {what} {value!r}; expected comma-separated integers") from None
    if not items:
        raise UserError(f"{what} is empty")
    return items


def command_line() -> str:
    return shlex.join(["mi-bench", *sys.argv[1:]])


def mi_options(fn):
    """The options that configure Mixup Inference, shared by ``eval`` and ``attack``."""
    import click

    opts = [
        click.option("--defense", type=click.Choice(["none", "mi-pl", "mi-ol", "mi-combined"]),
                     default="mi-ol", show_default=True),
        click.option("--mi-n", "mi_n", type=int, default=None,
                     help="MI partners per prediction N [30]"),
        click.option("--mi-lambda", "mi_lambda", type=float, default=None,
                     help="MI mixing ratio [0.5; 0.6 on IAT models]"),
        click.option("--mi-pool", "mi_pool", type=click.Choice(["train", "test"]), default="train",
                     show_default=True, help="split the clean partners come from"),
        click.option("--mi-threshold", "mi_threshold", type=float, default=None,
                     help="mi-combined: detector threshold [0.2]"),
        click.option("--max-batch", type=int, default=64, show_default=True,
                     help="images per base-model forward inside MI"),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def mi_overrides(mi_n, mi_lambda, mi_pool, mi_threshold) -> dict:
    return {"n_samples": mi_n, "lam": mi_lambda, "pool_split": mi_pool, "threshold": mi_threshold}
