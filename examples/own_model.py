"""Mixup Inference on a model you build and train yourself, with inputs in [-1, 1].

    python examples/own_model.py [N]        # N test images (default 16, the embedded sample)

mi-bench feeds images in [0, 1] and measures eps in those units; a model trained on [-1, 1]
inputs gets its rescaling as its first layer. `build` is also a factory for the command line:
    mi-bench attack --checkpoint examples/own_model.py:build --defense mi-ol --suite pgd
"""

import sys

import torch
import torch.nn.functional as F
from torch import nn

import mi_bench
from mi_bench.data import load_split


class ToSigned(nn.Module):
    def forward(self, x):  # [0, 1] -> [-1, 1]
        return 2 * x - 1


def build(epochs: int = 8) -> nn.Module:
    """A small CNN, trained with mixup for a few seconds on the sample's 1,000 training images."""
    torch.manual_seed(0)
    net = nn.Sequential(ToSigned(), nn.Conv2d(3, 32, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Conv2d(32, 64, 3, padding=1), nn.ReLU(), nn.MaxPool2d(2),
                        nn.Flatten(), nn.Linear(64 * 8 * 8, 10))
    train = load_split("cifar10", "train")
    images, labels = train.float_images(0, len(train)), train.labels
    opt = torch.optim.Adam(net.parameters(), 1e-3)
    for _ in range(epochs):
        for i in torch.randperm(len(train)).split(50):
            x, y, j = images[i], labels[i], torch.randperm(len(i))
            lam = float(torch.distributions.Beta(1.0, 1.0).sample())
            out = net(lam * x + (1 - lam) * x[j])
            loss = lam * F.cross_entropy(out, y) + (1 - lam) * F.cross_entropy(out, y[j])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return net.eval()


if __name__ == "__main__":
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 16
    result = mi_bench.benchmark(
        build(), model_name="my-cnn", n_examples=n, defense="mi-ol",
        defense_opts={"n_samples": 10}, suites={"pgd": {}, "eot-pgd": {"steps": 10,
                                                                        "eot_iter": 2}},
        attack_draws=2, eval_repeats=3)
    print(result)
