"""The ensemble's members, each one registered function: ``run(ensemble, x, y, seed)``.

- ``apgd-ce``, ``apgd-dlr``: pyautoattack's ``APGDAttack`` in its keep-the-highest-loss mode,
  on the defense with K x EOT draws inside one forward (a many-draw estimate per step);
- ``apgd-t``: pyautoattack's targeted APGD (9 targets), on the same model, on every point
  (not its default branch, which skips points on one forward); not a default;
- ``eot-pgd-ce``, ``eot-pgd-margin``: EOT-PGD (fresh K draws per gradient sample, EOT samples
  per step) with CE and with the margin loss on the log of the defense's mean output.
"""

from __future__ import annotations

import logging

import torch

from mi_bench.attacks.registry import register_member
from mi_bench.attacks.suites import PGDSuite


def _apgd_cost(ens) -> int:
    return ens.steps * ens.restarts * ens.calls_cost(ens.draws * ens.eot_iter)


def _eot_pgd_cost(ens) -> int:
    return ens.steps * ens.restarts * ens.eot_iter * ens.calls_cost(ens.draws)


def _apgd(ens, x: torch.Tensor, y: torch.Tensor, seed: int, loss: str) -> torch.Tensor:
    from pyautoattack.autopgd_base import APGDAttack

    atk = APGDAttack(ens.model_for(seed, ens.draws * ens.eot_iter), n_iter=ens.steps,
                     norm=ens.norm, n_restarts=ens.restarts, eps=ens.eps, seed=seed, loss=loss,
                     eot_iter=1, rho=0.75, device=str(x.device),
                     logger=logging.getLogger("auto-attack"))
    torch.manual_seed(seed)  # APGD seeds itself only in its default branch
    # best_loss: attack every point and keep its highest-loss iterate, never skip it
    return atk.perturb(x.contiguous(), y, best_loss=True).detach()


@register_member("apgd-ce", cost=_apgd_cost, default=True,
                 help="APGD with cross-entropy, K x EOT draws per forward")
def apgd_ce(ens, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    return _apgd(ens, x, y, seed, "ce")


@register_member("apgd-dlr", cost=_apgd_cost, default=True,
                 help="APGD with the DLR loss, K x EOT draws per forward")
def apgd_dlr(ens, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    return _apgd(ens, x, y, seed, "dlr")


@register_member("apgd-t", cost=lambda ens: ens.target_classes * (_apgd_cost(ens) + ens.restarts
                                                                  * ens.calls_cost(ens.draws)),
                 help="targeted APGD (9 targets), K x EOT draws per forward, every point")
def apgd_t(ens, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    """pyautoattack's targeted APGD run on every point for every target (its ``perturb``
    attacks only the points one forward calls right and returns the clean image for the rest);
    each point keeps its highest-loss iterate over targets and restarts."""
    from pyautoattack.autopgd_base import APGDAttack_targeted

    model = ens.model_for(seed, ens.draws * ens.eot_iter)
    atk = APGDAttack_targeted(model, n_iter=ens.steps, norm=ens.norm, n_restarts=ens.restarts,
                              eps=ens.eps, seed=seed, eot_iter=1, rho=0.75,
                              device=str(x.device), logger=logging.getLogger("auto-attack"),
                              n_target_classes=ens.target_classes)
    x = x.detach().contiguous()
    atk.init_hyperparam(x)
    torch.manual_seed(seed)
    best = x.clone()
    best_loss = torch.full((x.shape[0],), -float("inf"), device=x.device)
    for target_class in range(2, ens.target_classes + 2):  # AutoAttack's targets: 2nd, 3rd, ...
        for _ in range(ens.restarts):
            with torch.no_grad():
                atk.y_target = model(x).sort(dim=1)[1][:, -target_class]
            x_best, _, loss, _ = atk.attack_single_run(x, y)
            up = loss > best_loss
            best[up], best_loss[up] = x_best[up].detach(), loss[up]
    return best


def _eot_pgd(ens, x: torch.Tensor, y: torch.Tensor, seed: int, loss: str) -> torch.Tensor:
    suite = PGDSuite("eot-pgd", ens.model_for(seed, ens.draws), ens.norm, ens.eps, ens.steps,
                     2.5 * ens.eps / ens.steps, loss, ens.restarts, ens.eot_iter,
                     num_classes=ens.num_classes)
    return suite.perturb(x, y, seed)


@register_member("eot-pgd-ce", cost=_eot_pgd_cost, default=True,
                 help="EOT-PGD with cross-entropy on the log of the mean output")
def eot_pgd_ce(ens, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    return _eot_pgd(ens, x, y, seed, "ce")


@register_member("eot-pgd-margin", cost=_eot_pgd_cost, default=True,
                 help="EOT-PGD with the margin loss on the log of the mean output")
def eot_pgd_margin(ens, x: torch.Tensor, y: torch.Tensor, seed: int) -> torch.Tensor:
    return _eot_pgd(ens, x, y, seed, "margin")
