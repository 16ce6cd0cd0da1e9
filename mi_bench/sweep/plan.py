"""A spec expanded into jobs, in a stated order, each with its record key, status and cost.

Order: grids as written; inside a grid the product of checkpoints, defenses, suites,
surrogates (transfer only), eps, n, then every list-valued setting in the order written, and
seeds last, so that the seeds of one cell run one after the other. One job is one record.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

from mi_bench.attacks.config import MAX_EPS, AttackConfig
from mi_bench.attacks.runner import AttackRun
from mi_bench.defenses import canonical_name, defense_family
from mi_bench.errors import UserError
from mi_bench.models.zoo import load_classifier
from mi_bench.results import ResultStore, record_key
from mi_bench.sweep.spec import AXES, Grid, Spec, Store

# the defaults of ``mi-bench attack``: a job and the same command line make the same record
ATTACK_DEFAULTS = {"norm": "Linf", "eval_repeats": 5, "select_repeats": 8, "batch_size": 50, "max_batch": 64,
                   "attack_draws": 3, "loss": "ce", "restarts": 1, "variant": "pgd",
                   "targeted": False, "sanity": True}
MI_SETTINGS = {"mi_n": "n_samples", "mi_lambda": "lam", "mi_pool": "pool_split",
               "mi_threshold": "threshold"}


@dataclass
class Cell:
    """Jobs that differ only in their seed: one AttackRun serves them all."""

    grid: str
    store: Store
    settings: dict[str, Any]  # the resolved values of this cell (no seeds)
    seeds: list[int]
    varied: dict[str, Any] = field(default_factory=dict)  # its own values of list settings

    def config(self, data_dir: str | None) -> AttackConfig:
        return attack_config(self.settings, self.seeds, data_dir)

    def label(self) -> str:
        s = self.settings
        extra = "".join(f" {k}={v}" for k, v in self.varied.items())
        sur = f" from {s['surrogate']}" if s.get("surrogate") else ""
        return (f"{self.grid}: {s['checkpoint']} + {s['defense']}, {s['suite']}{sur}, eps "
                f"{s['eps'][0]} {s.get('norm', ATTACK_DEFAULTS['norm'])}, n {s['n']}{extra}")


@dataclass
class Job:
    number: int
    cell: Cell
    seed: int
    key: str = ""
    status: str = "todo"  # done, partial, todo
    batches_done: int = 0
    batches: int = 0
    attack_passes: int = 0  # estimated base-model passes, every attack run to its end
    eval_passes: int = 0
    attack_model: str = ""  # whose passes the attack pays (the surrogate for transfer)

    @property
    def passes(self) -> int:
        return self.attack_passes + self.eval_passes

    def remaining(self) -> float:
        """Share of the job still to run (0 when done)."""
        if self.status == "done":
            return 0.0
        return 1.0 - self.batches_done / self.batches


def attack_config(s: dict[str, Any], seeds: list[int], data_dir: str | None) -> AttackConfig:
    """A cell's settings as the ``mi-bench attack`` command would build them."""
    v = {**ATTACK_DEFAULTS, **s}
    # a grid's mi_* settings configure its MI defenses; the others in the grid ignore them
    is_mi = defense_family(canonical_name(v["defense"])) == "mi"
    opts = {MI_SETTINGS[k]: v[k] for k in MI_SETTINGS if is_mi and v.get(k) is not None}
    opts.update({k: str(x) for k, x in (v.get("defense_opt") or {}).items()})
    draws = v["attack_mi_samples"] if "attack_mi_samples" in s else v["attack_draws"]
    label, eps = v["eps"]
    step = v.get("step_size")
    return AttackConfig(
        checkpoint=v["checkpoint"], defense=v["defense"], suite=v["suite"], eps=eps,
        eps_label=label, norm=v["norm"], n_examples=v["n"], seeds=list(seeds),
        eval_repeats=v["eval_repeats"], select_repeats=v["select_repeats"], batch_size=v["batch_size"], data_dir=data_dir,
        defense_opts=opts, attack_draws=draws, max_batch=v["max_batch"],
        aa_version=v.get("aa_version"), aa_attacks=v.get("aa_attacks"), steps=v.get("steps"),
        step_size=step[1] if step else None, loss=v["loss"], restarts=v["restarts"],
        eot_iter=v.get("eot_iter"), targeted=v["targeted"], variant=v["variant"],
        surrogate=v.get("surrogate"), sanity=v["sanity"])


def _as_list(value: Any) -> list:
    return value if isinstance(value, list) else [value]


def expand(spec: Spec, grid: Grid) -> list[Cell]:
    """One grid's cells in the stated order (see the module docstring)."""
    where = f"{spec.path}: [[grid]] {grid.name!r}"
    g = grid.values
    cells = []
    for checkpoint, defense, suite in itertools.product(g["checkpoints"], g["defenses"],
                                                        g["suites"]):
        merged = {**spec.suite_settings.get(suite, {}),
                  **{k: v for k, v in g.items() if k not in AXES}}
        # a setting the grid itself sets wins over the suite's, even the suite's lists
        surrogates = g.get("surrogates") if suite == "transfer" else [None]
        if not surrogates:
            raise UserError(f"{where}: suite transfer needs surrogates = [\"...\"]")
        norm = merged.get("norm", ATTACK_DEFAULTS["norm"])
        for label, eps in g["eps"]:
            if eps > MAX_EPS[norm]:
                raise UserError(f"{where}: eps = {label!r} is out of range for {norm} "
                                f"(0, {MAX_EPS[norm]:.4g}]")
        lists = [k for k, v in merged.items() if isinstance(v, list) and
                 not (k == "aa_attacks" and all(isinstance(a, str) for a in v))]
        for combo in itertools.product(surrogates, g["eps"], g["n"],
                                       *[_as_list(merged[k]) for k in lists]):
            surrogate, eps, n, *picked = combo
            varied = dict(zip(lists, picked))
            settings = {**merged, **varied, "checkpoint": _model(spec, checkpoint),
                        "defense": defense, "suite": suite,
                        "surrogate": surrogate and _model(spec, surrogate), "eps": eps, "n": n}
            cells.append(Cell(grid.name, spec.stores[grid.store], settings,
                              list(g.get("seeds", [0])), varied))
    return cells


def _model(spec: Spec, name: str) -> str:
    """A checkpoint file next to the spec is found from any working directory."""
    beside = spec.path.parent / name
    return str(beside) if beside.is_file() else name


def check_models(spec: Spec, grids: list[Grid]) -> None:
    """Every checkpoint and surrogate loads, or one line names the grid, key and value."""
    seen: set[str] = set()
    for grid in grids:
        for key in ("checkpoints", "surrogates"):
            for name in grid.values.get(key) or []:
                if name not in seen:
                    seen.add(name)
                    try:
                        load_classifier(_model(spec, name))
                    except UserError as exc:
                        raise UserError(f"{spec.path}: [[grid]] {grid.name!r}: {key} = "
                                        f"{name!r}: {exc}") from None


def plan(spec: Spec, data_dir: str | None = None, only: list[str] | None = None) -> list[Job]:
    """Every job of the spec (or of the ``only`` grids), checked against the checkpoints, the
    data and the stores, with key, status and estimated cost. Runs no attack."""
    names = [g.name for g in spec.grids]
    unknown = sorted(set(only or []) - set(names))
    if unknown:
        raise UserError(f"--only {','.join(unknown)}: no such grid in {spec.path} "
                        f"(grids: {', '.join(names)})")
    grids = [g for g in spec.grids if not only or g.name in only]
    check_models(spec, grids)
    jobs: list[Job] = []
    seen: dict[tuple[str, str], int] = {}
    clean_paid: set[tuple[str, str, int]] = set()  # the clean draws are evaluated once, cached
    for grid in grids:
        for cell in expand(spec, grid):
            try:
                run = AttackRun(cell.config(data_dir), ResultStore(cell.store.path),
                                progress=False, log=lambda m: None)
            except UserError as exc:
                raise UserError(f"{spec.path}: [[grid]] {grid.name!r} ({cell.label()}): "
                                f"{exc}") from None
            for seed in cell.seeds:
                shared = (str(cell.store.path), run.clean_key(run.identity(seed)),
                          cell.config(data_dir).n_examples)
                job = _job(len(jobs) + 1, cell, seed, run, clean=shared not in clean_paid)
                if (str(cell.store.path), job.key) in seen:  # the same record twice: once
                    continue
                seen[(str(cell.store.path), job.key)] = job.number
                clean_paid.add(shared)
                jobs.append(job)
    return jobs


def _job(number: int, cell: Cell, seed: int, run: AttackRun, clean: bool = True) -> Job:
    c = run.cfg
    key = record_key(run.identity(seed))
    job = Job(number, cell, seed, key, batches=math.ceil(c.n_examples / c.batch_size))
    suite = run.suite(run.attack_model(seed))
    job.attack_passes = c.n_examples * suite.passes_per_image()
    job.eval_passes = c.n_examples * run.eval_passes_per_image(suite, clean)
    job.attack_model = c.surrogate if c.suite == "transfer" else c.checkpoint or "mixup"
    if run.store.has(key):
        job.status = "done"
    else:
        job.batches_done = len(run.store.done_batches(key))
        job.status = "partial" if job.batches_done else "todo"
    return job
