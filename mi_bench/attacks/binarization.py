"""The binarization test (Zimmermann, Brendel, Tramer & Carlini, NeurIPS 2022): is an attack
strong enough for this defense?

Around one test image x it builds a binary task whose adversarial example is known to exist
(written from the paper's description; its gap default and what it reports were checked
against the reference code, google-research/active-adversarial-tests,
``active_tests/decision_boundary_binarization.py``, none of which is copied here):

- inner points, class 0: ``n_inner`` points uniform in the shrunk ball of radius (1 - gap) eps
  around x, plus x itself; boundary points, class 1: ``n_boundary`` points at the ball's corners
  (Linf, the MI case study's choice) or on its sphere;
- a logistic-regression readout (scikit-learn) on the defended model's penultimate features of
  these points, averaged over ``feature_draws`` draws of a randomized defense; it must separate
  its own training points, else the sample is set aside as a setup failure;
- the readout replaces the model's head, its logits rescaled to the range of the original
  model's logits on the same points (a readout fitted to separable data has huge weights, whose
  saturated softmax would starve a gradient attack for reasons that have nothing to do with
  the defense); the defense is then rebuilt around this binarized classifier
  (``Defense.binarized``) and checked on fresh inner and boundary points.

The evaluator's own attack then runs against the binarized defense from x (label 0). A boundary
point lies inside the threat model, so a strong attack must reach class 1: an attack whose
success rate falls below ``threshold`` fails the test (:func:`verdict`). Passing is necessary for
a strong attack, not sufficient.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from mi_bench.defenses.registry import Defense, settings_from_options
from mi_bench.errors import UserError
from mi_bench.intervals import wilson

BOUNDARY = ("corners", "sphere")
# Output of the padding classes: the binary model answers with as many logits as the original
# model has classes, so that every suite (DLR, APGD-T, FAB-T need 3 or more) runs unchanged;
# the padding classes have zero probability and are never predicted.
PAD_LOGIT = -1000.0


@dataclass(frozen=True)
class BinarizationSettings:
    """One binary task per sample; defaults are the MI case study's (999 inner, 1 corner)."""

    n_inner: int = 999
    n_boundary: int = 1
    boundary: str = "corners"
    gap: float = 0.05  # inner radius (1 - gap) eps; the reference code's default too
    n_val: int = 100  # fresh validation points of each class
    feature_draws: int = 0  # draws averaged per readout feature; 0: the defense's eval draws
    c: float = 1.0  # LogisticRegression's inverse regularization (class_weight balanced)
    threshold: float = 0.95  # below this success rate an attack fails (our rule; the reference
    # code reports the ASR without a threshold)
    alpha: float = 0.05  # level of the one-sided binomial test on the number of failures

    def validate(self) -> None:
        for name in ("n_inner", "n_boundary", "n_val"):
            if getattr(self, name) < 1:
                raise UserError(f"binarization {name} must be at least 1, got "
                                f"{getattr(self, name)}")
        if self.feature_draws < 0:
            raise UserError(f"binarization feature_draws must be >= 0, got {self.feature_draws}")
        if self.boundary not in BOUNDARY:
            raise UserError(f"binarization boundary must be one of {BOUNDARY}, got "
                            f"{self.boundary!r}")
        if not 0.0 < self.gap < 1.0:
            raise UserError(f"binarization gap must lie in (0, 1), got {self.gap}")
        if not self.c > 0:
            raise UserError(f"binarization c must be positive, got {self.c}")
        if not 0.0 < self.threshold <= 1.0 or not 0.0 < self.alpha < 1.0:
            raise UserError("binarization threshold must lie in (0, 1] and alpha in (0, 1)")


# Presets (``--binarization-preset``). official: the MI case study (binarization_test.sh of
# google-research/active-adversarial-tests, as the issue quotes it): 512 samples, 999 inner and
# 1 boundary point at the corners, eps 8/255 (the default --eps), MI-OL with 15 draws and lambda 0.6.
# cpu: about 100 samples per (defense, attack) in well under an hour on 2 cores.
PRESETS: dict[str, dict] = {
    "official": {"n_examples": 512, "mi": {"n_samples": 15, "lam": 0.6},
                 "settings": {"n_inner": 999, "n_boundary": 1, "boundary": "corners",
                              "n_val": 100, "feature_draws": 0}},
    "cpu": {"n_examples": 100, "mi": {},
            "settings": {"n_inner": 199, "n_boundary": 1, "boundary": "corners", "n_val": 20,
                         "feature_draws": 3}},
}


def settings_from(options: dict) -> BinarizationSettings:
    """Checked settings from ``--binarization-opt key=value`` (one-line errors)."""
    return settings_from_options(BinarizationSettings, options, what="the binarization test")


@dataclass
class BinaryTask:
    """The binary task around one image: training points (x first) and fresh validation points.
    ``images``/``labels`` are also what MI's binarized form takes as its partner pool."""

    x: torch.Tensor  # (1, C, H, W)
    images: torch.Tensor
    labels: torch.Tensor
    val_images: torch.Tensor
    val_labels: torch.Tensor


def _inner(x: torch.Tensor, n: int, radius: float, norm: str, g: torch.Generator) -> torch.Tensor:
    """Uniform in the ``norm`` ball of ``radius`` around x (drawn on the CPU, then moved)."""
    shape = (n, *x.shape[1:])
    if norm == "Linf":
        delta = (torch.rand(shape, generator=g) * 2 - 1) * radius
    else:
        d = torch.randn(shape, generator=g)
        d = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        r = torch.rand(n, generator=g).pow(1.0 / d[0].numel()).view(-1, 1, 1, 1)
        delta = d * r * radius
    return (x + delta.to(x.device)).clamp(0, 1)


def _boundary(x: torch.Tensor, n: int, eps: float, norm: str, kind: str,
              g: torch.Generator) -> torch.Tensor:
    """Corners (Linf: every coordinate at +-eps) or the sphere (L2 norm eps; Linf: one random
    coordinate at +-eps). Clipping to [0, 1] keeps them inside the attack's constraint set."""
    shape = (n, *x.shape[1:])
    if kind == "corners":
        if norm != "Linf":
            raise UserError("binarization boundary=corners needs --norm Linf; use sphere for L2")
        delta = (torch.randint(0, 2, shape, generator=g) * 2 - 1).float() * eps
    elif norm == "L2":
        d = torch.randn(shape, generator=g)
        delta = d / d.flatten(1).norm(dim=1).view(-1, 1, 1, 1) * eps
    else:
        delta = (torch.rand(shape, generator=g) * 2 - 1).flatten(1) * eps
        pick = torch.randint(0, delta.shape[1], (n,), generator=g)
        sign = (torch.randint(0, 2, (n,), generator=g) * 2 - 1).float()
        delta[torch.arange(n), pick] = sign * eps
        delta = delta.view(shape)
    return (x + delta.to(x.device)).clamp(0, 1)


def sample_task(x: torch.Tensor, eps: float, norm: str, s: BinarizationSettings,
                g: torch.Generator) -> BinaryTask:
    """The training set (x, n_inner inner, n_boundary boundary points) and a fresh validation
    set (n_val of each class) around the image ``x`` of shape (1, C, H, W)."""
    radius = (1 - s.gap) * eps
    inner = torch.cat([x, _inner(x, s.n_inner, radius, norm, g)])
    bound = _boundary(x, s.n_boundary, eps, norm, s.boundary, g)
    val = torch.cat([_inner(x, s.n_val, radius, norm, g),
                     _boundary(x, s.n_val, eps, norm, s.boundary, g)])
    labels = torch.cat([torch.zeros(len(inner)), torch.ones(len(bound))]).long()
    val_labels = torch.cat([torch.zeros(s.n_val), torch.ones(s.n_val)]).long()
    return BinaryTask(x, torch.cat([inner, bound]), labels, val, val_labels)


@torch.no_grad()
def mean_features(features: Callable[[torch.Tensor], torch.Tensor], defense: Defense,
                  task: BinaryTask, images: torch.Tensor, labels: torch.Tensor, draws: int,
                  g: torch.Generator, max_batch: int = 64) -> tuple[torch.Tensor, int]:
    """Penultimate features of ``images`` under the defense, averaged over ``draws`` draws;
    returns them with the base-model forwards they cost."""
    out, forwards = [], 0
    per_chunk = max(1, max_batch // max(draws, 1))
    for xs, ys in zip(images.split(per_chunk), labels.split(per_chunk)):
        inputs = defense.binary_inputs(xs, ys, task, draws, g)
        b, d = inputs.shape[:2]
        out.append(features(inputs.flatten(0, 1)).view(b, d, -1).mean(1))
        forwards += b * d
    return torch.cat(out), forwards


def fit_readout(feats: np.ndarray, labels: np.ndarray, c: float = 1.0
                ) -> tuple[np.ndarray, float, float]:
    """(weights, bias, training accuracy) of scikit-learn's logistic regression on standardized
    features, folded back to raw features. Standardizing matters: a robust model's features move
    by ~1e-3 inside an 8/255 ball, where any regularization would swamp an unscaled fit. Balanced
    class weights make one boundary point among 1,000 inner points count as much as they."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    scaler = StandardScaler().fit(feats)
    z = scaler.transform(feats)
    lr = LogisticRegression(C=c, class_weight="balanced", max_iter=5000)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # unconverged: judged by its training accuracy below
        lr.fit(z, labels)
    acc = float((lr.predict(z) == labels).mean())
    w = lr.coef_[0] / scaler.scale_
    b = float(lr.intercept_[0] - np.dot(w, scaler.mean_))
    return w.astype(np.float64), b, acc


def logit_scale(readout: np.ndarray, original: np.ndarray) -> float:
    """Factor that gives the binary logits (-z/2, z/2) the width of the interval the original
    model's logits span on the same points."""
    width = float(np.max(np.abs(readout)))
    if width == 0 or not math.isfinite(width):
        return 1.0
    return float(original.max() - original.min()) / width


class BinaryModel(nn.Module):
    """The binarized classifier: the model's features, the rescaled readout as its head and
    padding classes up to ``num_classes`` outputs."""

    def __init__(self, model: nn.Module, features: Callable, w: np.ndarray, b: float,
                 scale: float, num_classes: int):
        super().__init__()
        self.model = model  # registered: device moves and module_device see its parameters
        self._features = features
        self.head = nn.Linear(len(w), 2)
        wt = torch.as_tensor(w, dtype=torch.float32) * scale / 2
        p = next(model.parameters(), None)
        with torch.no_grad():
            self.head.weight.copy_(torch.stack([-wt, wt]))
            self.head.bias.copy_(torch.tensor([-b, b], dtype=torch.float32) * scale / 2)
        self.head.requires_grad_(False)
        if p is not None:
            self.head.to(p.device)
        self.num_classes = max(2, num_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        z = self.head(self._features(x))
        if self.num_classes == 2:
            return z
        pad = z.new_full((z.shape[0], self.num_classes - 2), PAD_LOGIT)
        return torch.cat([z, pad], dim=1)


@dataclass
class Setup:
    """One sample's binary task and readout, or why it was set aside."""

    task: BinaryTask
    model: BinaryModel | None
    train_acc: float
    scale: float
    forwards: int
    failure: str | None = None
    info: dict = field(default_factory=dict)


def build_setup(model: nn.Module, defense: Defense, x: torch.Tensor, eps: float, norm: str,
                s: BinarizationSettings, g: torch.Generator, num_classes: int,
                max_batch: int = 64) -> Setup:
    """The binary task around ``x`` and the readout fitted on its defended features."""
    from mi_bench.models import feature_split

    task = sample_task(x, eps, norm, s, g)
    features, head = feature_split(model, probe=x)
    draws = 1 if not defense.randomized else (s.feature_draws or defense.eval_draws())
    feats, forwards = mean_features(features, defense, task, task.images, task.labels, draws, g,
                                    max_batch)
    labels = task.labels.numpy()
    f = feats.double().cpu().numpy()
    if not np.isfinite(f).all():
        return Setup(task, None, 0.0, 1.0, forwards, "features are not finite")
    w, b, acc = fit_readout(f, labels, s.c)
    if acc < 1.0:
        wrong = round((1 - acc) * len(labels))
        return Setup(task, None, acc, 1.0, forwards,
                     f"readout does not separate its training points ({wrong} of {len(labels)} "
                     "wrong)")
    with torch.no_grad():
        original = head(feats.to(head.weight.dtype)).cpu().numpy()
    scale = logit_scale(f @ w + b, original)
    return Setup(task, BinaryModel(model, features, w, b, scale, num_classes), acc, scale,
                 forwards)


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), exactly (no scipy)."""
    if p >= 1.0:
        return 1.0 if k >= n else 0.0
    return float(sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1)))


def verdict(successes: int, n: int, threshold: float = 0.95, alpha: float = 0.05) -> dict:
    """The test's verdict on ``successes`` out of ``n`` valid samples.

    An attack passes when its success rate reaches ``threshold``, and fails below it. Beside it,
    the one-sided binomial test of H0 "the attack succeeds with probability >= threshold":
    ``p_value`` is P(this few successes or fewer | threshold), and ``significant`` says whether
    the failure count rejects H0 at ``alpha`` (a fail that is not significant may be noise of a
    small n).
    """
    if n == 0:
        return {"asr": None, "interval": [None, None], "n_valid": 0, "successes": 0,
                "threshold": threshold, "p_value": None, "significant": False,
                "verdict": "no valid sample"}
    lo, hi = wilson(successes, n)
    p = binom_cdf(successes, n, threshold)
    return {"asr": successes / n, "interval": [lo, hi], "n_valid": n, "successes": successes,
            "threshold": threshold, "p_value": p, "significant": p < alpha,
            "verdict": "pass" if successes / n >= threshold else "fail"}
