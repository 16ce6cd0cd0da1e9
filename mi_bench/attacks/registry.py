"""Attack suites and ensemble members addressed by name, in the image of the defense registry.

A suite is one registered builder: ``@register_suite("eot-pgd", column="EOT-PGD", ...)`` on a
function that takes a :class:`SuiteRequest` and returns a :class:`~mi_bench.attacks.suites.Suite`.
The entry declares what the rest of the harness needs to know without running it: whose
gradients the attack follows (``target``), its default number of steps, its table column and CSV
prefix, whether it applies to randomized defenses, and its help text. The CLI choices, the
config and sweep-spec validation, the cost estimate and the report's columns all read these
entries, so adding an attack is one module (and its test).

An ensemble member is ``@register_member("apgd-ce", cost=...)`` on a function that attacks a
batch for the ensemble; ``cost`` gives its base-model passes per image.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from torch import nn

from mi_bench.errors import UserError

if TYPE_CHECKING:
    from mi_bench.attacks.config import AttackConfig
    from mi_bench.attacks.suites import Suite

TARGETS = ("defense", "base", "surrogate")


@dataclass(frozen=True)
class SuiteRequest:
    """What a suite's builder gets: the run's settings and the models it may attack."""

    cfg: AttackConfig
    model: nn.Module  # what the attack differentiates (see SuiteEntry.target)
    draws: int | None  # K: the defense's draws inside each attack forward (None: no draws)
    calls_cost: int  # base-model passes per image and call of ``model``
    randomized: bool  # the defense is randomized
    stochastic: bool  # ``model`` is (the attack needs EOT)
    num_classes: int
    steps: int  # cfg.steps, else the entry's default
    defended: Callable[[int, int], nn.Module]  # (seed, draws) -> the defense with that K
    passes_per_call: Callable[[int | None], int]  # the defense's cost for a K


@dataclass(frozen=True)
class SuiteEntry:
    name: str
    build: Callable[[SuiteRequest], Suite]
    column: str  # the report's column header
    csv: str  # the report's CSV field prefix
    target: str  # 'defense' (adaptive), 'base' (oblivious) or 'surrogate' (transfer)
    default_steps: int
    position: int  # column order in the tables (registration order breaks ties)
    ranks: bool  # may rank a row against the leaderboard (the first registered such wins)
    randomized: bool  # applies to randomized defenses
    legend: str
    help: str
    module: str
    title: str  # its name in prose ('AutoAttack'); the column header by default
    # a suite with a loop and record of its own (the binarization test): (run, seed) -> record;
    # its records have their own table (``summary``) and are no column of the report
    run_seed: Callable[..., dict] | None = None
    summary: Callable[[list[dict]], str] | None = None
    check: Callable[..., None] | None = None  # (config) -> None: its own settings, checked

    @property
    def in_tables(self) -> bool:
        return self.run_seed is None

    @property
    def adaptive(self) -> bool:
        """It differentiates the defense as deployed (EOT through its randomness)."""
        return self.target == "defense"


@dataclass(frozen=True)
class MemberEntry:
    name: str
    run: Callable[..., Any]  # (ensemble, x, y, seed) -> adversarial images
    cost: Callable[..., int]  # (ensemble) -> base-model passes per image, run to the end
    default: bool  # in the ensemble when --aa-attacks is not given
    help: str
    module: str


_SUITES: dict[str, SuiteEntry] = {}
_MEMBERS: dict[str, MemberEntry] = {}


def register_suite(name: str, *, column: str, target: str, default_steps: int,
                   csv: str | None = None, position: int | None = None, ranks: bool = False,
                   randomized: bool = True, legend: str = "", help: str = "",
                   title: str | None = None, run_seed: Callable[..., dict] | None = None,
                   summary: Callable[[list[dict]], str] | None = None,
                   check: Callable[..., None] | None = None) -> Callable:
    """Function decorator: the builder of suite ``name`` (see the module docstring)."""
    if target not in TARGETS:
        raise ValueError(f"suite {name!r}: target must be one of {TARGETS}, got {target!r}")

    def deco(build: Callable[[SuiteRequest], Suite]) -> Callable[[SuiteRequest], Suite]:
        if name in _SUITES:
            raise ValueError(f"suite {name!r} registered twice")
        _SUITES[name] = SuiteEntry(
            name, build, column, csv or name.replace("-", "_"), target, default_steps,
            len(_SUITES) if position is None else position, ranks, randomized, legend, help,
            build.__module__, title or column, run_seed, summary, check)
        return build

    return deco


def register_member(name: str, *, cost: Callable[..., int], default: bool = False,
                    help: str = "") -> Callable:
    """Function decorator: ``run(ensemble, x, y, seed)`` of ensemble member ``name``."""

    def deco(run: Callable[..., Any]) -> Callable[..., Any]:
        if name in _MEMBERS:
            raise ValueError(f"ensemble member {name!r} registered twice")
        _MEMBERS[name] = MemberEntry(name, run, cost, default, help, run.__module__)
        return run

    return deco


def suite_names() -> list[str]:
    """Registered suites, in registration order (the CLI's order)."""
    return list(_SUITES)


def suites_by_position() -> list[SuiteEntry]:
    """The suites that are columns of the report, in the order of its columns."""
    order = list(_SUITES)
    return sorted((e for e in _SUITES.values() if e.in_tables),
                  key=lambda e: (e.position, order.index(e.name)))


def inner_suites() -> list[str]:
    """The suites a test of attack strength (binarization) can run: those that attack the
    model in front of them (not a surrogate) in the common batch loop."""
    return [n for n, e in _SUITES.items() if e.in_tables and e.target != "surrogate"]


def get_suite(name: str) -> SuiteEntry:
    if name not in _SUITES:
        raise UserError(f"unknown suite {name!r}; expected one of {', '.join(_SUITES)}")
    return _SUITES[name]


def find_suite(name: str) -> SuiteEntry | None:
    """The entry, or None for a suite no module registered (a record of an unknown suite)."""
    return _SUITES.get(name)


def member_names() -> tuple[str, ...]:
    return tuple(_MEMBERS)


def default_members() -> tuple[str, ...]:
    return tuple(m for m, e in _MEMBERS.items() if e.default)


def get_member(name: str) -> MemberEntry:
    if name not in _MEMBERS:
        raise UserError(f"{name!r} is not an ensemble member; expected one of "
                        f"{', '.join(_MEMBERS)} (or --aa-version custom for pyautoattack's list)")
    return _MEMBERS[name]


def unregister(name: str) -> None:
    """Remove a suite or member registered by a test (built-ins stay)."""
    for table in (_SUITES, _MEMBERS):
        entry = table.get(name)
        if entry is not None and not entry.module.startswith("mi_bench."):
            del table[name]
