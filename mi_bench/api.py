"""``mi_bench.benchmark``: evaluate a model and a (randomized) defense from Python.

Why: researchers call RobustBench's ``robustbench.eval.benchmark(model, n_examples, dataset,
threat_model, ...)`` from a notebook and get two floats. This is the same call for randomized
defenses: arguments that mean the same carry the same names, and it returns a table with every
suite's robust accuracy, the worst over attacks, their 95% intervals over images, the cost and
the record keys. It builds the same ``AttackConfig``s as ``mi-bench attack`` (through
``attacks.build``), so a Python run and a CLI run of one setting share one record, and it refuses
bad arguments with the CLI's messages.
"""

from __future__ import annotations

import sys
import tempfile
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from mi_bench.errors import UserError

DATASETS = ("cifar10", "cifar100")
HEADLINE_EPS = {"Linf": "8/255", "L2": "0.5"}  # RobustBench's eps when none is given
DEFAULT_SUITES = ("pgd", "eot-pgd", "autoattack")


@dataclass
class BenchmarkResult:
    """What ``benchmark`` returns: one row per eps; ``clean, robust = result`` as RobustBench.

    ``frame`` columns (accuracies as fractions in [0, 1]): ``clean`` and, per suite run,
    ``<suite>``, each with ``_low``/``_high`` (95% interval over images); ``worst`` (per image
    the worst candidate over the clean image and every attack run of the row, chosen on held-out
    scoring draws for a randomized defense, then the mean) with its interval;
    ``forwards``, ``backwards`` (base-model passes) and ``seconds`` paid; ``keys``: the records.
    """

    frame: pd.DataFrame
    records: list[dict] = field(repr=False)
    store: Path | None = None

    @property
    def keys(self) -> dict[str, list[str]]:
        """Suite -> record keys (one per seed and eps)."""
        out: dict[str, list[str]] = {}
        for r in self.records:
            out.setdefault(r["suite"], []).append(r["key"])
        return out

    @property
    def clean_acc(self) -> float:
        return float(self.frame["clean"].iloc[0])

    @property
    def robust_acc(self) -> float:
        """The worst over attacks at the first eps: the number to quote."""
        return float(self.frame["worst"].iloc[0])

    def __iter__(self) -> Iterator[float]:
        return iter((self.clean_acc, self.robust_acc))

    def to_markdown(self) -> str:
        """Percent with intervals, as ``report.md`` writes them."""
        view = self.frame[["model", "defense", "eps", "n", "seeds"]].copy()
        from mi_bench.report.columns import suite_order

        for col in ("clean", *[s for s in suite_order() if s in self.frame], "worst"):
            view[col] = [_pct(m, lo, hi) for m, lo, hi in zip(
                self.frame[col], self.frame[f"{col}_low"], self.frame[f"{col}_high"])]
        view["passes"] = (self.frame["forwards"] + self.frame["backwards"]).map("{:,}".format)
        view["seconds"] = self.frame["seconds"].map("{:.0f}".format)
        return view.to_markdown(index=False, disable_numparse=True)

    def __str__(self) -> str:
        return self.to_markdown()

    def _repr_html_(self) -> str:  # notebooks
        return self.frame.to_html(index=False)


def _pct(mean: float, lo: float, hi: float) -> str:
    return "—" if pd.isna(mean) else f"{100 * mean:.1f} [{100 * lo:.1f}, {100 * hi:.1f}]"


def _eps_text(eps: Any, threat_model: str) -> str:
    """None, a float, a string (``8/255``) or a list of them -> the CLI's ``--eps`` text."""
    if eps is None:
        return HEADLINE_EPS.get(threat_model, "8/255")
    items = eps if isinstance(eps, (list, tuple)) else [eps]
    out = []
    for e in items:
        if isinstance(e, str):
            out.append(e)
        elif isinstance(e, (int, float)):
            k = round(e * 255)  # 8/255 reads as the command line writes it
            out.append(f"{k}/255" if 0 < k < 255 and k / 255 == e else f"{float(e)!r}".rstrip(
                "0").rstrip("."))
        else:
            raise UserError(f"bad eps {e!r}; expected a number or a fraction like 8/255")
    return ",".join(out)


def _seeds_text(seeds: Any) -> str:
    items = [seeds] if isinstance(seeds, int) else list(seeds)
    return ",".join(str(s) for s in items)


def _suites(suites: Any) -> dict[str, dict]:
    """A suite name, a list of them, or {suite: settings that only that suite gets}."""
    if isinstance(suites, str):
        suites = [suites]
    if isinstance(suites, Mapping):
        return {s: dict(v or {}) for s, v in suites.items()}
    out = {s: {} for s in suites}
    if not out:
        raise UserError("suites is empty: nothing to run")
    return out


def _load_model(model: Any, model_name: str | None, dataset: str, arch: str | None,
                arch_kwargs: dict) -> tuple[tuple[nn.Module, dict], str | None]:
    """(module, card) and the checkpoint text a CLI run would give (None for a module)."""
    from mi_bench.models.plugins import card_for_module
    from mi_bench.models.zoo import load_classifier

    if isinstance(model, nn.Module):
        return card_for_module(model, model_name or type(model).__name__, dataset=dataset), None
    if model is not None and not isinstance(model, (str, Path)):
        raise UserError(f"model must be an nn.Module or a checkpoint (name, path, "
                        f"robustbench:<name>, package.module:factory), got {type(model).__name__}")
    if model_name is not None:
        raise UserError("model_name names an nn.Module passed as model; a checkpoint names "
                        "itself")
    spec = None if model is None else str(model)
    loaded = load_classifier(spec, arch, arch_kwargs)
    if loaded[1].get("dataset", "cifar10") != dataset:
        raise UserError(f"checkpoint {spec} is a {loaded[1].get('dataset')} model, not "
                        f"{dataset}; pass dataset={loaded[1].get('dataset')!r}")
    return loaded, spec


def benchmark(model: nn.Module | str | None, n_examples: int = 100, dataset: str = "cifar10",
              threat_model: str = "Linf", to_disk: bool = True, model_name: str | None = None,
              data_dir: str | None = None, device: torch.device | str | None = None,
              batch_size: int = 50, eps: float | str | Sequence[float | str] | None = None, *,
              defense: Any = "mi-ol", defense_opts: Mapping[str, Any] | None = None,
              suites: Any = DEFAULT_SUITES, seeds: int | Sequence[int] = (0,),
              eval_repeats: int = 5, attack_draws: int = 3, surrogate: str | None = None,
              store: str | Path = "results", progress: bool = False, verbose: bool = True,
              **settings: Any) -> BenchmarkResult:
    """Attack ``model`` behind ``defense`` with every suite in ``suites``; records go to ``store``.

    ``model``: an ``nn.Module`` on [0, 1] images (``model_name`` names it in records) or a
    ``--checkpoint`` value. ``defense``: a registered name, a plug-in reference, a ``Defense``
    class (configured with ``defense_opts``) or a configured instance. ``to_disk=False`` keeps
    the records in a temporary store, deleted on return. ``settings`` are the ``mi-bench
    attack`` options with ``_`` for ``-`` (``steps``, ``eot_iter``, ``aa_version``,
    ``attack_preset``, ``max_batch``, ...); ``suites={"eot-pgd": {"steps": 50}}`` gives one
    suite its own. Defaults are the command's, so equal settings find equal records.
    """
    from mi_bench.attacks.build import apply_preset, build_configs, check_surrogates
    from mi_bench.commands.common import defense_settings
    from mi_bench.commands.runtime import start
    from mi_bench.defenses.plugins import from_python
    from mi_bench.results import ResultStore, check_output_dir

    if dataset not in DATASETS:
        raise UserError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
    arch, arch_kwargs = settings.pop("arch", None), dict(settings.pop("arch_kwargs", {}) or {})
    preset = settings.pop("attack_preset", None)
    named = isinstance(defense, str)
    opt_items = [f"{k}={v}" for k, v in (defense_opts or {}).items()]
    opts = defense_settings(defense, opt_items, None, None, None, None) if named else dict(
        defense_opts or {})
    log = (lambda m: print(m, file=sys.stderr)) if verbose else (lambda m: None)

    loaded, checkpoint = _load_model(model, model_name, dataset, arch, arch_kwargs)
    module, card = loaded
    built = None if named else from_python(defense, card, opts, data_dir)
    plan = []  # every suite's configs checked before any attack, as the command does
    for suite, own in _suites(suites).items():
        s = {"attack_draws": attack_draws, "eval_repeats": eval_repeats, **settings, **own}
        s = apply_preset(own.get("attack_preset", preset), suite, set(settings) | set(own),
                         {k: v for k, v in s.items() if k != "attack_preset"})
        if s.get("step_size") is not None and not isinstance(s["step_size"], str):
            s["step_size"] = _eps_text(s["step_size"], threat_model)
        if isinstance(s.get("aa_attacks"), (list, tuple)):
            s["aa_attacks"] = ",".join(s["aa_attacks"])
        unknown = sorted(set(s) - _ATTACK_OPTIONS)
        if unknown:
            raise UserError(f"unknown setting(s) {unknown}; expected mi-bench attack options "
                            f"with _ for -: {', '.join(sorted(_ATTACK_OPTIONS))}")
        plan += build_configs(
            checkpoint=checkpoint, arch=arch, arch_kwargs=arch_kwargs,
            defense=defense if named else built.name, defense_opts=opts, suite=suite,
            eps_list=_eps_text(eps, threat_model), norm=threat_model, n_examples=n_examples,
            seeds=_seeds_text(seeds), surrogate=surrogate if suite == "transfer" else None,
            batch_size=batch_size, data_dir=data_dir, **s)
    check_surrogates(plan)
    dev, _ = start("auto" if device is None else str(device))

    frozen = [(p, p.requires_grad) for p in module.parameters()]  # the runner freezes them
    was_training = module.training
    tmp = None if to_disk else tempfile.TemporaryDirectory(prefix="mi-bench-")
    root = Path(tmp.name if tmp else store)
    try:
        result_store = ResultStore(root)
        result_store.check()
        check_output_dir(root, "store")
        records = []
        for cfg in plan:
            run = _run(cfg, result_store, progress, log, dev, loaded, built)
            records += [run.run_seed(s) for s in cfg.seeds]
        frame = _frame(result_store, records)
    finally:
        for p, flag in frozen:
            p.requires_grad_(flag)
        module.train(was_training)
        if tmp:
            tmp.cleanup()
    return BenchmarkResult(frame, records, None if tmp else root)


_ATTACK_OPTIONS = {"eval_repeats", "select_repeats", "attack_draws", "max_batch", "aa_version", "aa_attacks",
                   "steps", "step_size", "loss", "restarts", "eot_iter", "targeted", "variant",
                   "sanity"}


def _run(cfg, store, progress, log, device, loaded, built):
    from mi_bench.attacks.runner import AttackRun

    return AttackRun(cfg, store, progress=progress, log=log, device=device, model=loaded,
                     defense=built)


def _frame(store, records: list[dict]) -> pd.DataFrame:
    """One row per (defense settings, eps) from the records, with the report's intervals."""
    from mi_bench.report.columns import suite_order
    from mi_bench.report.rows import collect_rows

    out = []
    for row in collect_rows(store, records):
        main = row.main_cell
        recs = [r for c in row.cells.values() for v in [c.chosen, *c.others] for r in v.records]
        d = {"model": row.model, "defense": row.defense_label, "eps": row.eps_label,
             "norm": row.norm, "n": main.n, "seeds": len(main.seeds),
             "clean": main.clean_mean}
        d["clean_low"], d["clean_high"] = main.clean_ci
        for suite in suite_order():
            if suite in row.cells:
                cell = row.cells[suite]
                d[suite] = cell.mean
                d[f"{suite}_low"], d[f"{suite}_high"] = cell.ci
        worst = row.worst_over_attacks
        d["worst"], (d["worst_low"], d["worst_high"]) = worst if worst else (
            float("nan"), (float("nan"), float("nan")))
        d.update(forwards=sum(int(r["forwards"]) for r in recs),
                 backwards=sum(int(r["backwards"]) for r in recs),
                 seconds=sum(float(r["seconds"]) for r in recs),
                 keys=[r["key"] for r in recs])
        out.append(d)
    return pd.DataFrame(out)
