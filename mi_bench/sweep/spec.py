"""A sweep spec: the results matrix written down once as TOML, checked before any work.

::

    [sweep]                      # optional
    baseline = "robustbench:cifar10:Linf"
    plots = true

    [stores.main]                # one or more result stores; paths relative to this file
    path = "results/store"
    report = "results"           # optional: the report regenerated at the end

    [defaults]                   # optional: any grid key, for every grid
    seeds = [0, 1, 2]

    [suite.eot-pgd]              # optional: settings for every job of one suite
    steps = 20
    eot_iter = 10

    [[grid]]                     # one or more: the product of its lists
    name = "pgd"
    store = "main"               # default: the first store
    checkpoints = ["mixup", "iat"]
    defenses = ["none", "mi-ol"]
    suites = ["pgd"]
    eps = ["1/255", "8/255"]
    n = [500]
    attack_draws = [1, 3]        # any setting may be a list: one more axis

Settings are the ``mi-bench attack`` options with ``_`` for ``-`` (``mi_n`` is ``--mi-n``), with
the same defaults. A grid's own keys win over its suite's, and those over ``[defaults]``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mi_bench.attacks.pgd import LOSSES, NORMS
from mi_bench.attacks.registry import member_names, suite_names
from mi_bench.attacks.suites import AA_ATTACKS, AA_VERSIONS
from mi_bench.defenses import defense_aliases, defense_names
from mi_bench.errors import UserError
from mi_bench.options import parse_eps


def _defenses() -> tuple[str, ...]:
    return tuple(defense_names() + defense_aliases())


def _attacks() -> tuple[str, ...]:
    """pyautoattack's attacks and the ensemble's members, as registered when a spec is read."""
    return tuple(dict.fromkeys(AA_ATTACKS + member_names()))


AXES = ("checkpoints", "defenses", "suites", "surrogates", "eps", "n", "seeds")
REQUIRED = ("checkpoints", "defenses", "suites", "eps", "n")


class SpecError(UserError):
    """A bad spec: one line that names the file, the table and the key."""


class BadValue(Exception):
    """A value a check refused; the caller names the key."""


def _fail(where: str, msg: str) -> SpecError:
    return SpecError(f"{where}: {msg}")


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _int(minimum: int) -> Callable[[Any], Any]:
    def check(v):
        if not _is_int(v) or v < minimum:
            raise BadValue(f"expected an integer >= {minimum}")
        return v
    return check


def _choice(options) -> Callable[[Any], Any]:
    """``options``: the values, or a function that lists them (a registry, read when checked)."""
    def check(v):
        allowed = options() if callable(options) else options
        if v not in allowed:
            raise BadValue(f"expected one of {list(allowed)}")
        return v
    return check


def _defense(v):
    """A registered defense, or a plug-in reference (imported and checked now)."""
    if v in _defenses():
        return v
    from mi_bench.defenses.plugins import plugin_reference

    try:
        ref = plugin_reference(v) if isinstance(v, str) else None
    except UserError as exc:  # an import or protocol failure: the spec's key names it
        raise BadValue(str(exc)) from None
    if ref is None:
        raise BadValue(f"expected one of {list(_defenses())}, package.module:Name, "
                       "path/to/file.py:Name or a mi_bench.defenses entry point")
    return v


def _text(v):
    if not isinstance(v, str) or not v.strip():
        raise BadValue("expected a non-empty string")
    return v.strip()


def _flag(v):
    if not isinstance(v, bool):
        raise BadValue("expected true or false")
    return v


def _number(lo: float | None = None, hi: float | None = None):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise BadValue("expected a number")
        if (lo is not None and v < lo) or (hi is not None and v > hi):
            raise BadValue(f"expected a number in [{lo}, {hi}]")
        return float(v)
    return check


def _eps(v) -> tuple[str, float]:
    """``"8/255"`` or ``0.03`` -> (label, value); the range is checked per norm in the plan."""
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise BadValue("expected a number or a fraction like \"8/255\"")
    label = v.strip() if isinstance(v, str) else f"{v:g}"
    try:
        value = parse_eps(label)
    except UserError as exc:
        raise BadValue(str(exc)) from None
    if value <= 0:
        raise BadValue("must be positive")
    return label, value


def _aa_attacks(v):
    if not isinstance(v, list) or not v or not all(isinstance(a, str) for a in v):
        raise BadValue(f"expected a list of attacks from {list(_attacks())}")
    bad = [a for a in v if a not in _attacks()]
    if bad:
        raise BadValue(f"unknown attack(s) {bad}; expected {list(_attacks())}")
    return list(v)


def _defense_opt(v):
    """A table of defense settings, e.g. ``defense_opt = { sigma = 0.05, draws = 1 }``."""
    if not isinstance(v, dict) or not all(isinstance(x, (int, float, str, bool))
                                          for x in v.values()):
        raise BadValue("expected a table of defense settings, e.g. { sigma = 0.05 }")
    return dict(v)


# axis -> check of one value
AXIS_CHECKS: dict[str, Callable[[Any], Any]] = {
    "checkpoints": _text, "defenses": _defense, "suites": _choice(suite_names),
    "surrogates": _text, "eps": _eps, "n": _int(1), "seeds": _int(0),
}
# setting -> check of one value (a list of values is one more axis)
SETTING_CHECKS: dict[str, Callable[[Any], Any]] = {
    "norm": _choice(NORMS), "eval_repeats": _int(1), "select_repeats": _int(1),
    "batch_size": _int(1), "max_batch": _int(1),
    "attack_draws": _int(1), "attack_mi_samples": _int(1), "defense_opt": _defense_opt,
    "aa_version": _choice(AA_VERSIONS), "aa_attacks": _aa_attacks,
    "steps": _int(1), "step_size": _eps, "loss": _choice(LOSSES), "restarts": _int(1),
    "eot_iter": _int(1), "targeted": _flag, "variant": _choice(("pgd", "apgd")),
    "mi_n": _int(1), "mi_lambda": _number(0.0, 1.0), "mi_pool": _choice(("train", "test")),
    "mi_threshold": _number(), "sanity": _flag,
}
GRID_KEYS = ("name", "store", *AXES, *SETTING_CHECKS)


@dataclass
class Store:
    name: str
    path: Path
    report: Path | None = None


@dataclass
class Grid:
    """One ``[[grid]]`` with ``[defaults]`` folded in; values are lists (axes) or scalars."""

    name: str
    store: str
    values: dict[str, Any]


@dataclass
class Spec:
    path: Path
    stores: dict[str, Store]
    grids: list[Grid]
    suite_settings: dict[str, dict[str, Any]] = field(default_factory=dict)
    baseline: str = "robustbench:cifar10:Linf"
    plots: bool = True


def _read_toml(path: Path) -> dict:
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        try:
            import tomli as tomllib
        except ModuleNotFoundError:
            raise UserError("reading a sweep spec needs Python 3.11+ (tomllib) or the tomli "
                            "package") from None
    if not path.is_file():
        raise UserError(f"sweep spec {path} does not exist")
    try:
        return tomllib.loads(path.read_text())
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise UserError(f"{path}: not valid TOML ({exc})") from None


def _only_keys(table: Any, allowed, where: str) -> dict:
    if not isinstance(table, dict):
        raise _fail(where, "expected a table")
    for key in table:
        if key not in allowed:
            raise _fail(where, f"unknown key {key!r}; expected one of: {', '.join(allowed)}")
    return table


def _check_value(key: str, value: Any, where: str) -> Any:
    """One grid value, checked; lists stay lists (an axis), scalars stay scalars."""
    check = AXIS_CHECKS.get(key) or SETTING_CHECKS[key]
    many = isinstance(value, list) and not (key == "aa_attacks" and
                                            all(isinstance(v, str) for v in value))
    items = value if many else [value]
    if many and not items:
        raise _fail(where, f"{key} is empty: nothing to run")
    out = []
    for item in items:
        try:
            out.append(check(item))
        except BadValue as exc:
            raise _fail(where, f"{key} = {item!r}: {exc}") from None
    if key == "seeds" and len(set(out)) != len(out):
        raise _fail(where, f"seeds must be distinct, got {value}")
    return out if many or key in AXES else out[0]


def _check_grid(table: dict, where: str) -> dict:
    return {k: _check_value(k, v, where) for k, v in table.items() if k not in ("name", "store")}


def load_spec(path: str | Path) -> Spec:
    """Read and check a spec (every key and value) without touching a checkpoint or a store."""
    path = Path(path)
    doc = _read_toml(path)
    where = str(path)
    _only_keys(doc, ("sweep", "stores", "defaults", "suite", "grid"), where)
    top = _only_keys(doc.get("sweep", {}), ("baseline", "plots"), f"{where}: [sweep]")
    baseline = top.get("baseline", "robustbench:cifar10:Linf")
    if not isinstance(baseline, str):
        raise _fail(f"{where}: [sweep]", "baseline: expected a string like robustbench:cifar10:Linf")
    plots = top.get("plots", True)
    if not isinstance(plots, bool):
        raise _fail(f"{where}: [sweep]", "plots: expected true or false")

    stores = {}
    raw_stores = doc.get("stores")
    if not raw_stores or not isinstance(raw_stores, dict):
        raise _fail(where, "no [stores.NAME] table with a path: where should records go?")
    for name, table in raw_stores.items():
        w = f"{where}: [stores.{name}]"
        _only_keys(table, ("path", "report"), w)
        if not isinstance(table.get("path"), str) or not table["path"].strip():
            raise _fail(w, "path: expected a folder (relative to the spec file)")
        report = table.get("report")
        if report is not None and (not isinstance(report, str) or not report.strip()):
            raise _fail(w, "report: expected a folder (relative to the spec file)")
        stores[name] = Store(name, path.parent / table["path"],
                             path.parent / report if report else None)

    defaults = _check_grid(_only_keys(doc.get("defaults", {}), GRID_KEYS[2:],
                                      f"{where}: [defaults]"), f"{where}: [defaults]")
    suite_settings = {}
    raw_suites = _only_keys(doc.get("suite", {}), tuple(suite_names()),
                            f"{where}: [suite]")
    for suite, table in raw_suites.items():
        w = f"{where}: [suite.{suite}]"
        suite_settings[suite] = _check_grid(_only_keys(table, tuple(SETTING_CHECKS), w), w)

    raw_grids = doc.get("grid")
    if not raw_grids:
        raise _fail(where, "no [[grid]]: nothing to run")
    if not isinstance(raw_grids, list):
        raise _fail(where, "grid: expected [[grid]] tables")
    grids, names = [], set()
    for i, table in enumerate(raw_grids):
        name = table.get("name", f"grid{i + 1}") if isinstance(table, dict) else f"grid{i + 1}"
        w = f"{where}: [[grid]] {name!r}"
        _only_keys(table, GRID_KEYS, w)
        if not isinstance(name, str) or not name.strip() or name in names:
            raise _fail(w, "name: expected a string no other grid has")
        names.add(name)
        store = table.get("store", next(iter(stores)))
        if store not in stores:
            raise _fail(w, f"store {store!r} is not one of the [stores]: {', '.join(stores)}")
        values = {**defaults, **_check_grid(table, w)}
        for key in REQUIRED:
            if key not in values:
                raise _fail(w, f"missing key {key!r} (the grid's {', '.join(REQUIRED)} are "
                               "required; seeds default to [0])")
        grids.append(Grid(name, store, values))
    return Spec(path, stores, grids, suite_settings, baseline, plots)
