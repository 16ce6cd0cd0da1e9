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


def parse_int_list(value: str, what: str, minimum: int | None = None) -> list[int]:
    try:
        items = [int(v) for v in value.split(",") if v.strip()]
    except ValueError:
        raise UserError(f"bad {what} {value!r}; expected comma-separated integers") from None
    if not items:
        raise UserError(f"{what} is empty")
    if minimum is not None and min(items) < minimum:
        raise UserError(f"{what} must be integers >= {minimum}, got {min(items)}")
    return items


def parse_seeds(value: str) -> list[int]:
    """``0,1,2`` -> [0, 1, 2]: distinct, non-negative (numpy's seed streams need that)."""
    seeds = parse_int_list(value, "--seeds", minimum=0)
    if len(set(seeds)) != len(seeds):
        raise UserError(f"--seeds must be distinct, got {value}")
    return seeds


def parse_eps_list(value: str) -> list[tuple[str, float]]:
    """``1/255,8/255`` -> [(label, eps), ...]; every entry is parsed before any work starts."""
    labels = [e.strip() for e in value.split(",")]
    if not any(labels) or not all(labels):
        raise UserError(f"bad --eps {value!r}; expected e.g. 8/255 or 1/255,2/255,4/255")
    return [(label, parse_eps(label)) for label in labels]


def split_key_values(items, what: str, example: str = "width=16") -> dict[str, str]:
    """``("a=1", "b=x")`` -> {"a": "1", "b": "x"}: the one parser of key=value options."""
    out = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"bad {what} {item!r}; expected key=value, e.g. {example}")
        out[key.strip()] = value.strip()
    return out


def parse_key_values(items, what: str) -> dict:
    """``("width=16",)`` -> {"width": 16}: ints, floats or strings, for --arch-opt and alike."""
    out = {}
    for key, value in split_key_values(items, what).items():
        for cast in (int, float, str):
            try:
                out[key] = cast(value)
                break
            except ValueError:
                continue
    return out


def command_line() -> str:
    return shlex.join(["mi-bench", *sys.argv[1:]])


def seed_option(**kwargs):
    import click

    return click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
                        **kwargs)


def checkpoint_options(fn):
    """--checkpoint and, for a plain state dict file, its architecture."""
    import click

    from mi_bench.models import list_models

    opts = [
        click.option("--checkpoint", default=None,
                     help="path, shipped name [mixup], autoattack-resnet18 or robustbench:<name>"),
        click.option("--arch", type=click.Choice(list_models()), default=None,
                     help="architecture of a plain state dict checkpoint"),
        click.option("--arch-opt", multiple=True, help="architecture option, e.g. width=16"),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def defense_options(fn):
    """The options that choose and configure the inference-time defense (``eval``, ``attack``)."""
    import click

    from mi_bench.defenses import defense_aliases, defense_names

    opts = [
        click.option("--defense", type=defense_type(defense_names() + defense_aliases()),
                     default="mi-ol", show_default=True,
                     help="a registered defense, or a plug-in: package.module:Name, "
                          "path/to/file.py:Name, a mi_bench.defenses entry point"),
        click.option("--defense-opt", multiple=True,
                     help="defense setting key=value, e.g. sigma=0.05 or draws=1 (repeatable)"),
        click.option("--mi-n", "mi_n", type=int, default=None,
                     help="MI partners per prediction N [30] (= --defense-opt n_samples=N)"),
        click.option("--mi-lambda", "mi_lambda", type=float, default=None,
                     help="MI mixing ratio [0.5; 0.6 on IAT models]"),
        click.option("--mi-pool", "mi_pool", type=click.Choice(["train", "test"]), default=None,
                     help="split the MI partners come from [train]"),
        click.option("--mi-threshold", "mi_threshold", type=float, default=None,
                     help="mi-combined: detector threshold [0.2]"),
        click.option("--max-batch", type=click.IntRange(min=1), default=64, show_default=True,
                     help="images per base-model forward inside a randomized defense"),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def defense_type(names: list[str]):
    """click.Choice over the registered names that also lets plug-in references through (they
    are imported and checked when the defense is built, with one error line)."""
    import click

    from mi_bench.defenses.plugins import entry_points
    from mi_bench.plugins import is_reference

    class DefenseChoice(click.Choice):
        def convert(self, value, param, ctx):
            if isinstance(value, str) and (is_reference(value) or value in entry_points()):
                return value
            return super().convert(value, param, ctx)

    return DefenseChoice(names)


MI_FLAGS = {"n_samples": "--mi-n", "lam": "--mi-lambda", "pool_split": "--mi-pool",
            "threshold": "--mi-threshold"}


def defense_settings(defense: str, defense_opt, mi_n, mi_lambda, mi_pool, mi_threshold) -> dict:
    """Merge --defense-opt and the MI shortcuts into one options dict (MI flags need MI)."""
    from mi_bench.defenses import canonical_name

    opts = split_key_values(defense_opt, "--defense-opt", "sigma=0.025")
    mi = {"n_samples": mi_n, "lam": mi_lambda, "pool_split": mi_pool, "threshold": mi_threshold}
    given = {k: v for k, v in mi.items() if v is not None}
    if given and not canonical_name(defense).startswith("mi-"):
        flags = ", ".join(MI_FLAGS[k] for k in given)
        raise UserError(f"{flags} configure MI; defense {defense!r} takes --defense-opt instead")
    clash = set(given) & set(opts)
    if clash:
        raise UserError(f"{sorted(clash)} given both as an --mi-* flag and as --defense-opt")
    return {**opts, **given}
