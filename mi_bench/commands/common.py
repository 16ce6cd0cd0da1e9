"""Option parsing shared by the subcommands."""

from __future__ import annotations

import shlex
import sys

from mi_bench.errors import UserError
from mi_bench.options import (  # noqa: F401  (the commands read them from here)
    parse_eps,
    parse_eps_list,
    parse_int_list,
    parse_key_values,
    parse_seeds,
    split_key_values,
)


def command_line() -> str:
    return shlex.join(["mi-bench", *sys.argv[1:]])


def registry_choice(names, also=None):
    """A click choice that reads a registry when it checks a value, so that a unit registered
    after the CLI was imported (a plug-in, a test's module) is accepted; ``also(value)`` lets
    other values through (plug-in references)."""
    import click

    class RegistryChoice(click.Choice):
        def __init__(self):
            super().__init__(())

        def convert(self, value, param, ctx):
            if also is not None and isinstance(value, str) and also(value):
                return value
            return super().convert(value, param, ctx)

        @property
        def choices(self):
            return tuple(names())

        @choices.setter
        def choices(self, value):  # click.Choice assigns it; the registry is the truth
            pass

    return RegistryChoice()


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


    opts = [
        click.option("--defense", type=defense_type(), default="mi-ol", show_default=True,
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


def defense_type():
    """The registered defenses (read when a value is checked), and plug-in references and
    entry-point names let through: they are imported and checked when the defense is built,
    with one error line."""
    from mi_bench.defenses import defense_aliases, defense_names
    from mi_bench.defenses.plugins import entry_points
    from mi_bench.plugins import is_reference

    return registry_choice(lambda: defense_names() + defense_aliases(),
                           also=lambda v: is_reference(v) or v in entry_points())


MI_FLAGS = {"n_samples": "--mi-n", "lam": "--mi-lambda", "pool_split": "--mi-pool",
            "threshold": "--mi-threshold"}


def defense_settings(defense: str, defense_opt, mi_n, mi_lambda, mi_pool, mi_threshold) -> dict:
    """Merge --defense-opt and the MI shortcuts into one options dict (MI flags need MI)."""
    from mi_bench.defenses import canonical_name, defense_family

    opts = split_key_values(defense_opt, "--defense-opt", "sigma=0.025")
    mi = {"n_samples": mi_n, "lam": mi_lambda, "pool_split": mi_pool, "threshold": mi_threshold}
    given = {k: v for k, v in mi.items() if v is not None}
    if given and defense_family(canonical_name(defense)) != "mi":
        flags = ", ".join(MI_FLAGS[k] for k in given)
        raise UserError(f"{flags} configure MI; defense {defense!r} takes --defense-opt instead")
    clash = set(given) & set(opts)
    if clash:
        raise UserError(f"{sorted(clash)} given both as an --mi-* flag and as --defense-opt")
    return {**opts, **given}
