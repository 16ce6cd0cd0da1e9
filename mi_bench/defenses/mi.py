"""Mixup Inference (Pang, Xu & Zhu, ICLR 2020) as a stochastic ``nn.Module`` around any classifier.

For an input x with base prediction y_hat, MI draws N partners x_s from a labelled clean pool,
classifies lam * x + (1 - lam) * x_s and averages the softmax over the N mixtures:

- ``pl`` (predicted label): partners carry the label y_hat;
- ``ol`` (other labels): each partner's label is drawn uniformly from the labels other than y_hat;
- ``combined``: the paper's detector. If the base model's top confidence minus MI-PL's top
  confidence is below ``threshold`` the MI-PL output is used, else the MI-OL output.

All B x N mixtures go through batched forwards, chunked by ``max_batch``. Randomness comes only
from ``generator``: fresh partners are drawn on every call, and the same seed replays a run.
The output is differentiable with respect to x (through the mixtures; the choice of y_hat and of
the partners is discrete), which is what an adaptive attack with EOT needs.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from types import SimpleNamespace

import torch
import torch.nn.functional as F
from torch import nn

from mi_bench.data import Split, load_split
from mi_bench.defenses.registry import Defense, check_draws, register, settings_from_options
from mi_bench.errors import UserError

MODES = ("pl", "ol", "combined")
MODE_OF = {"mi-pl": "pl", "mi-ol": "ol", "mi-combined": "combined"}  # registered name -> mode


@dataclass(frozen=True)
class MIConfig:
    """MI settings; defaults follow the official code (N = 30, lambda = 0.5, 0.6 for IAT)."""

    mode: str = "ol"
    n_samples: int = 30
    lam: float = 0.5
    n_pl: int = 5  # combined only: MI-PL partners ...
    lam_pl: float = 0.5
    n_ol: int = 15  # ... and MI-OL partners
    lam_ol: float = 0.4
    threshold: float = 0.2
    pool_split: str = "train"

    def validate(self) -> None:
        if self.mode not in MODES:
            raise UserError(f"unknown MI mode {self.mode!r}; expected one of {MODES}")
        for name in ("n_samples", "n_pl", "n_ol"):
            check_draws(getattr(self, name), f"MI {name}")
        for name in ("lam", "lam_pl", "lam_ol"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise UserError(f"MI {name} must lie in [0, 1], got {getattr(self, name)}")
        if self.pool_split not in ("train", "test"):
            raise UserError(f"MI pool split must be 'train' or 'test', got {self.pool_split!r}")

    def forwards_per_prediction(self) -> int:
        """Base-model forwards per prediction: the cost a leaderboard reports."""
        return 1 + (self.n_pl + self.n_ol if self.mode == "combined" else self.n_samples)

    def as_dict(self) -> dict:
        d = asdict(self)
        if self.mode == "combined":
            d.pop("n_samples"), d.pop("lam")
        else:
            for k in ("n_pl", "lam_pl", "n_ol", "lam_ol", "threshold"):
                d.pop(k)
        return d


class PartnerPool:
    """Clean labelled images grouped by class, for O(1) sampling of partners by label."""

    def __init__(self, split: Split):
        self.images = split.images  # uint8; converted per draw to keep a 50k pool small
        labels = split.labels
        num_classes = split.num_classes
        counts = torch.bincount(labels, minlength=num_classes)
        if (counts == 0).any():
            empty = torch.nonzero(counts == 0).flatten().tolist()
            raise UserError(f"MI partner pool ({split.source}) has no image of class(es) "
                            f"{empty[:10]}; every class needs at least one partner")
        order = torch.argsort(labels, stable=True)
        self.table = torch.full((num_classes, int(counts.max())), -1, dtype=torch.long)
        start = 0
        for c, n in enumerate(counts.tolist()):
            self.table[c, :n] = order[start:start + n]
            start += n
        self.counts = counts
        self.labels = labels
        self.num_classes = num_classes

    def sample(self, classes: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        """One pool index per entry of ``classes`` (any shape), uniform within its class."""
        u = torch.rand(classes.shape, generator=generator)
        pos = (u * self.counts[classes]).long().clamp_max(self.counts[classes] - 1)
        return self.table[classes, pos]

    def float_images(self, idx: torch.Tensor, device) -> torch.Tensor:
        """Partners ``idx`` (drawn on the CPU) from a uint8 copy of the pool moved to ``device``
        once, so a GPU run never ships the pool again and draws match the CPU's."""
        device = torch.device(device)
        if self.images.device != device:
            self.images = self.images.to(device)
        return self.images[idx.flatten().to(device)].float().div_(255.0)


class TensorPool(PartnerPool):
    """A pool of float images kept as they are (no 8-bit rounding): the binarization test's
    training points, whose boundary points must stay exactly on the eps-ball's corners."""

    def __init__(self, images: torch.Tensor, labels: torch.Tensor, num_classes: int):
        super().__init__(SimpleNamespace(images=images.float(), labels=labels.long(),
                                         num_classes=num_classes, source="binary task"))

    def float_images(self, idx: torch.Tensor, device) -> torch.Tensor:
        device = torch.device(device)
        if self.images.device != device:
            self.images = self.images.to(device)
        return self.images[idx.flatten().to(device)]


class MixupInference(nn.Module):
    """MI around ``model``; returns mean softmax (``output='prob'``) or its log (``'log'``)."""

    randomized = True  # evaluation draws R times; attacks need EOT

    def __init__(self, model: nn.Module, pool: Split | PartnerPool, config: MIConfig = MIConfig(),
                 generator: torch.Generator | None = None, max_batch: int = 64,
                 output: str = "log"):
        super().__init__()
        config.validate()
        if output not in ("prob", "log"):
            raise ValueError("output must be 'prob' or 'log'")
        self.model = model.eval()
        self.pool = pool if isinstance(pool, PartnerPool) else PartnerPool(pool)
        self.config = config
        self.generator = generator if generator is not None else torch.Generator().manual_seed(0)
        self.max_batch = max_batch
        self.output = output
        self.last_draw: dict[str, torch.Tensor] = {}  # partners of the last call, for checks
        self.base_forwards = 0  # images through the base model, for cost accounting

    def train(self, mode: bool = True) -> MixupInference:
        """The base model stays in eval mode: MI is an inference-time defense."""
        super().train(mode)
        self.model.eval()
        return self

    def draw(self, y_hat: torch.Tensor, n: int, mode: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Partner indices and labels, shape (B, n), for predicted labels ``y_hat``."""
        y = y_hat.cpu()[:, None].expand(-1, n)
        if mode == "ol":
            k = self.pool.num_classes
            shift = torch.randint(1, k, y.shape, generator=self.generator)
            y = (y + shift) % k
        idx = self.pool.sample(y, self.generator)
        return idx, y

    def base_logits(self, x: torch.Tensor) -> torch.Tensor:
        """Base model on a batch of any size, in chunks of ``max_batch``."""
        self.base_forwards += x.shape[0]
        return torch.cat([self.model(c) for c in x.split(self.max_batch)])

    def mixed_probs(self, x: torch.Tensor, idx: torch.Tensor, lam: float) -> torch.Tensor:
        """Mean softmax over the mixtures lam * x + (1 - lam) * pool[idx], idx of shape (B, n)."""
        b, n = idx.shape
        partners = self.pool.float_images(idx, x.device).view(b, n, *x.shape[1:])
        mixed = lam * x[:, None] + (1 - lam) * partners
        probs = F.softmax(self.base_logits(mixed.flatten(0, 1)), dim=1)
        return probs.view(b, n, -1).mean(dim=1)

    def _mi(self, x: torch.Tensor, y_hat: torch.Tensor, n: int, lam: float, mode: str, tag: str):
        idx, labels = self.draw(y_hat, n, mode)
        self.last_draw[f"{tag}_index"], self.last_draw[f"{tag}_label"] = idx, labels
        return self.mixed_probs(x, idx, lam)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        self.last_draw = {}
        with torch.no_grad():
            base_probs = F.softmax(self.base_logits(x), dim=1)
        y_hat = base_probs.argmax(dim=1)
        self.last_draw["y_hat"] = y_hat.cpu()
        if cfg.mode == "combined":
            p_pl = self._mi(x, y_hat, cfg.n_pl, cfg.lam_pl, "pl", "pl")
            p_ol = self._mi(x, y_hat, cfg.n_ol, cfg.lam_ol, "ol", "ol")
            gap = base_probs.max(dim=1).values - p_pl.detach().max(dim=1).values
            use_pl = gap < cfg.threshold
            self.last_draw["detected"] = (~use_pl).cpu()
            probs = torch.where(use_pl[:, None], p_pl, p_ol)
        else:
            probs = self._mi(x, y_hat, cfg.n_samples, cfg.lam, cfg.mode, cfg.mode)
        if self.output == "prob":
            return probs
        return probs.clamp_min(1e-12).log()


def reference_mi_loop(mi: MixupInference, x: torch.Tensor, idx: torch.Tensor,
                      lam: float) -> torch.Tensor:
    """The official code's evaluation order: one image, one partner, one forward at a time.

    Used as the correctness reference for the batched path and as the benchmark baseline.
    """
    out = []
    for i in range(x.shape[0]):
        total = 0
        for j in range(idx.shape[1]):
            partner = mi.pool.float_images(idx[i, j:j + 1], x.device)
            total = total + F.softmax(mi.model(lam * x[i:i + 1] + (1 - lam) * partner), dim=1)
        out.append(total / idx.shape[1])
    return torch.cat(out)


@register(*MODE_OF)
class MIDefense(Defense):
    """MI as a registered defense: PL, OL or the combined detector, with its partner pool.

    Defaults follow the official code: N = 30, lambda 0.5 (0.6 on IAT models); the pool is the
    training split unless ``pool_split=test``. Its content hash is part of ``settings()``, so
    records made with another pool are never mistaken for these.
    """

    family = "mi"

    def __init__(self, name: str, card: dict, options: dict, data_dir: str | None = None):
        super().__init__(name)
        mode = MODE_OF[name]
        if "mode" in options:
            raise UserError(f"the MI mode comes from the defense name ({name}); drop mode=")
        if mode == "combined" and {"n_samples", "lam"} & set(options):
            raise UserError("mi-combined uses its own partners (5 PL at 0.5, 15 OL at 0.4); "
                            "--mi-n and --mi-lambda apply to mi-pl and mi-ol")
        defaults: dict = {"mode": mode}
        if "lam" not in options and card.get("method") == "iat" and mode != "combined":
            defaults["lam"] = 0.6
        self.config: MIConfig = settings_from_options(MIConfig, options, defaults,
                                                      what=f"defense {name}")
        split = load_split(card.get("dataset", "cifar10"), self.config.pool_split, data_dir)
        self.pool = PartnerPool(split)
        if self.pool.num_classes != card.get("num_classes", self.pool.num_classes):
            raise UserError(f"partner pool has {self.pool.num_classes} classes, model has "
                            f"{card['num_classes']}")
        self.pool_id = f"{split.dataset}/{split.split}:{split.sha256()[:16]}"

    def settings(self) -> dict:
        return {**self.config.as_dict(), "pool": self.pool_id}

    def _config(self, draws: int | None) -> MIConfig:
        cfg = self.config
        if draws is not None and cfg.mode == "combined":  # K split as N_PL : N_OL
            n_pl = max(1, round(cfg.n_pl * draws / (cfg.n_pl + cfg.n_ol)))
            return replace(cfg, n_pl=n_pl, n_ol=max(1, draws - n_pl))
        if draws is not None:
            return replace(cfg, n_samples=draws)
        return cfg

    def eval_draws(self) -> int:
        return self.config.forwards_per_prediction() - 1

    def passes_per_call(self, draws: int | None = None) -> int:
        return self._config(draws).forwards_per_prediction()

    def wrap(self, model: nn.Module, seed: int, draws: int | None = None,
             max_batch: int = 64) -> nn.Module:
        return MixupInference(model, self.pool, self._config(draws),
                              torch.Generator().manual_seed(seed), max_batch=max_batch,
                              output="log")

    def binary_inputs(self, x: torch.Tensor, labels: torch.Tensor, task, draws: int,
                      generator: torch.Generator) -> torch.Tensor:
        """Mixtures of each image with partners from the binary task's points, drawn as MI
        would for a correct prediction (PL: the image's own label, OL: the other one)."""
        pool = TensorPool(task.images, task.labels, 2)
        cfg = self._config(draws)
        parts = [("pl", cfg.n_pl, cfg.lam_pl), ("ol", cfg.n_ol, cfg.lam_ol)] \
            if cfg.mode == "combined" else [(cfg.mode, cfg.n_samples, cfg.lam)]
        out = []
        for mode, n, lam in parts:
            y = labels.cpu()[:, None].expand(-1, n)
            if mode == "ol":
                y = 1 - y
            idx = pool.sample(y, generator)
            partners = pool.float_images(idx, x.device).view(x.shape[0], n, *x.shape[1:])
            out.append(lam * x[:, None] + (1 - lam) * partners)
        return torch.cat(out, dim=1)

    def binarized(self, model: nn.Module, task, seed: int, draws: int | None = None,
                  max_batch: int = 64) -> nn.Module:
        """MI around the binarized classifier with the binary task's own training points as its
        partner pool, as the official MI case study of the binarization test."""
        return MixupInference(model, TensorPool(task.images, task.labels, 2), self._config(draws),
                              torch.Generator().manual_seed(seed), max_batch=max_batch,
                              output="log")

    def label(self) -> str:
        cfg = self.config
        lam = f"λ={cfg.lam}" if cfg.mode != "combined" else f"λ={cfg.lam_pl}/{cfg.lam_ol}"
        return f"{self.name} ({lam})"
