"""A temporary plug-in package for the tests: defenses, a model factory, and broken plug-ins.

``make_package(root)`` writes ``tmpplug`` (importable once ``root`` is on ``sys.path``) and its
``dist-info`` with an entry point ``tmp-noise`` of group ``mi_bench.defenses``: what a user's
``pip install`` of a package declaring that entry point leaves behind.
"""

from __future__ import annotations

from pathlib import Path

DEFS = '''
import torch
import torch.nn.functional as F
from torch import nn


class Noisy(nn.Module):
    """Mean softmax over `draws` Gaussian-noised copies; randomness from `generator` only."""

    def __init__(self, model, sigma, generator, draws):
        super().__init__()
        self.model, self.sigma, self.generator, self.draws = model, sigma, generator, draws

    def forward(self, x):
        xs = x.repeat_interleave(self.draws, 0)
        noise = torch.randn(xs.shape, generator=self.generator).to(x.device)
        probs = F.softmax(self.model((xs + self.sigma * noise).clamp(0, 1)), 1)
        return probs.view(len(x), self.draws, -1).mean(1).clamp_min(1e-12).log()


class Noise:
    """Keyword-settings style: Noise(sigma=..., draws=...)."""

    randomized = True

    def __init__(self, sigma: float = 0.05, draws: int = 2):
        self.sigma, self.draws = sigma, draws

    def settings(self):
        return {"sigma": self.sigma, "draws": self.draws}

    def eval_draws(self):
        return self.draws

    def passes_per_call(self, draws=None):
        return draws or self.draws

    def wrap(self, model, seed, draws=None, max_batch=64):
        return Noisy(model, self.sigma, torch.Generator().manual_seed(seed), draws or self.draws)


class Blur:
    """Deterministic: a 3x3 mean filter before the model."""

    randomized = False

    def settings(self):
        return {"kernel": 3}

    def passes_per_call(self, draws=None):
        return 1

    def wrap(self, model, seed, draws=None, max_batch=64):
        return nn.Sequential(nn.AvgPool2d(3, 1, 1, count_include_pad=False), model)


class LiesDeterministic(Noise):
    randomized = False


class LiesRandomized(Blur):
    randomized = True


class GlobalRandom(Noise):
    """Random, but from torch's global generator: not reproducible from wrap's seed."""

    def wrap(self, model, seed, draws=None, max_batch=64):
        return Noisy(model, self.sigma, None, draws or self.draws)
'''

OTHER = '''
from tmpplug.defs import Noise as _Noise


class Noise(_Noise):
    """The same short name as tmpplug.defs:Noise, another plug-in."""
'''

MODELS = '''
import torch
from torch import nn


def build():
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.AdaptiveAvgPool2d(2),
                         nn.Flatten(), nn.Linear(16, 10))


def needs_argument(width):
    return build()


def not_a_model():
    return 42
'''

BROKEN = '''
class NoWrap:
    def settings(self):
        return {}

    def passes_per_call(self, draws=None):
        return 1


def function():
    return None
'''


def make_package(root: Path) -> Path:
    """Write ``tmpplug`` and its entry-point metadata under ``root``; return ``root``."""
    pkg = root / "tmpplug"
    pkg.mkdir(parents=True)
    (pkg / "__init__.py").write_text("")
    (pkg / "defs.py").write_text(DEFS)
    (pkg / "other.py").write_text(OTHER)
    (pkg / "models.py").write_text(MODELS)
    (pkg / "broken.py").write_text(BROKEN)
    (pkg / "fails.py").write_text("raise RuntimeError('plug-in bug at import')\n")
    info = root / "tmpplug-0.1.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: tmpplug\nVersion: 0.1\n")
    (info / "entry_points.txt").write_text(
        "[mi_bench.defenses]\ntmp-noise = tmpplug.defs:Noise\n")
    return root
