"""The four suites of ``mi-bench attack``, each a registered builder (see ``registry.py``).

- ``autoattack``: on a randomized defense the ensemble (``ensemble.py``), else pyautoattack
  as published (``standard``, ``rand``, ``plus`` or a ``custom`` list);
- ``eot-pgd``: adaptive PGD through the defense, ``eot_iter`` gradient samples per step;
- ``pgd``: oblivious PGD on the undefended base model, as in the MI paper;
- ``transfer``: PGD on a surrogate checkpoint, evaluated on the target.
"""

from __future__ import annotations

from mi_bench.attacks.ensemble import EnsembleSuite, ensemble_applies
from mi_bench.attacks.registry import SuiteRequest, register_suite
from mi_bench.attacks.suites import AutoAttackSuite, PGDSuite, Suite


@register_suite("autoattack", column="adaptive", csv="adaptive", target="defense",
                default_steps=100, position=1, ranks=True, title="AutoAttack",
                legend="*adaptive*: AutoAttack against the defended model",
                help="AutoAttack: the ensemble on randomized defenses, else standard")
def autoattack(req: SuiteRequest) -> Suite:
    c = req.cfg
    if ensemble_applies(req.randomized, c.aa_version):
        return EnsembleSuite(req.defended, req.passes_per_call, c.norm, c.eps,
                             draws=req.draws or 1,
                             eot_iter=c.eot_iter or (20 if req.randomized else 1),
                             steps=req.steps, restarts=c.restarts,
                             members=tuple(c.aa_attacks or ()), num_classes=req.num_classes)
    version = c.aa_version or ("rand" if req.stochastic else "standard")
    if c.aa_attacks and version != "custom":
        version = "custom"
    eot = c.eot_iter if c.eot_iter is not None else (20 if req.stochastic else None)
    return AutoAttackSuite(req.model, c.norm, c.eps, version, c.aa_attacks, c.restarts, eot,
                           req.calls_cost)


def _pgd(req: SuiteRequest, step: float | None) -> PGDSuite:
    c = req.cfg
    step = c.step_size if c.step_size is not None else step
    return PGDSuite(c.suite, req.model, c.norm, c.eps, req.steps, step, c.loss, c.restarts,
                    c.eot_iter or (20 if req.stochastic else 1), c.targeted, c.variant,
                    req.num_classes, req.calls_cost)


def _paper_step(req: SuiteRequest) -> float | None:
    """The MI paper's step: eps/4 (2/255 at 8/255) in Linf; PGD's default in L2."""
    return req.cfg.eps / 4 if req.cfg.norm == "Linf" else None


@register_suite("eot-pgd", column="EOT-PGD", csv="eot_pgd", target="defense",
                default_steps=100, position=2, ranks=True,
                legend="*EOT-PGD*: PGD with expectation over MI's randomness",
                help="adaptive PGD through the defense with EOT")
def eot_pgd(req: SuiteRequest) -> Suite:
    return _pgd(req, 2.5 * req.cfg.eps / req.steps)


@register_suite("pgd", column="oblivious", csv="oblivious", target="base", default_steps=10,
                position=0, legend="*oblivious*: PGD on the undefended base model",
                help="oblivious PGD on the base model, evaluated through the defense")
def pgd(req: SuiteRequest) -> Suite:
    return _pgd(req, _paper_step(req))


@register_suite("transfer", column="transfer", csv="transfer", target="surrogate",
                default_steps=10, position=3,
                legend="*transfer*: adversarial examples from a surrogate model",
                help="PGD on --surrogate, evaluated on the target")
def transfer(req: SuiteRequest) -> Suite:
    return _pgd(req, _paper_step(req))
