"""Training throughput: images/s of ERM, mixup and IAT(k) with the project's real training step.

Same model (``--arch``, ``--width``; default PreAct ResNet-18 at width 16), same batch size
(``--batch``, default 128), same data (the embedded CIFAR-10 training sample), same step as
``mi_bench.train.train``: batch gather, ``augment``, ``_train_step`` for the method, then
``zero_grad``/``backward``/``step`` of the SGD optimizer set up as ``train`` does, plus the
loss/accuracy bookkeeping of its loop. Each method has its own model and optimizer, built from
the same seed.

The methods are timed in interleaved rounds: each round runs one chunk of ``--steps`` optimizer
steps per method, in an order that rotates from round to round, so that load from other
processes hits every method alike. Prints, per method, the median images/s over the rounds, and
the medians of the per-round time ratios mixup/ERM and IAT/ERM (same images per chunk):

- ``mixup_overhead_vs_erm = X%``: median(mixup time / ERM time) - 1 (the issue asks <= 10%);
- ``iat_cost_vs_erm = Yx``: median(IAT time / ERM time); IAT(k) does k PGD forward+backward
  passes plus two training forwards per step, so about k + 2 times ERM is expected.

On a machine that other jobs keep busy, ``--threads 1`` avoids OpenMP threads waiting on each
other (with 2 threads under load, every small parallel op can cost a scheduler time slice).

On CUDA (``--device cuda``) the step runs as ``train`` runs it there: bf16 autocast,
channels_last, data and augmentation on the GPU.

    python benchmarks/train_throughput.py [--arch preact-resnet18] [--width 16] [--batch 128]
        [--pgd-steps 1] [--steps 2] [--repeats 5] [--threads N] [--device cpu|cuda]
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time

import numpy as np
import torch

from mi_bench.data import load_sample
from mi_bench.device import set_precision
from mi_bench.models import create_model
from mi_bench.train import TrainConfig, _train_step, augment, lr_at

METHODS = ("erm", "mixup", "iat")


def seconds(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


class Trainer:
    """One method's model, optimizer and data stream, stepping exactly as ``train`` does."""

    def __init__(self, cfg: TrainConfig, train_split, seed: int, device: torch.device):
        self.cfg, self.split, self.device = cfg, train_split, device
        self.amp = device.type == "cuda"
        self.fmt = torch.channels_last if self.amp else torch.contiguous_format
        torch.manual_seed(cfg.seed)
        self.model = create_model(cfg.arch, train_split.num_classes, **cfg.arch_kwargs)
        self.model.to(device, memory_format=self.fmt)
        self.images, self.labels = train_split.images.to(device), train_split.labels.to(device)
        self.opt = torch.optim.SGD(self.model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                                   weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
        self.g = torch.Generator().manual_seed(seed)
        self.rng = np.random.default_rng(seed)
        self.steps_per_epoch = len(train_split) // cfg.batch_size
        self.step_no = 0
        self.perm = torch.randperm(len(train_split), generator=self.g)
        self.model.train()

    def step(self) -> None:
        cfg, split = self.cfg, self.split
        i = self.step_no % self.steps_per_epoch
        if i == 0 and self.step_no:
            self.perm = torch.randperm(len(split), generator=self.g)
        for group in self.opt.param_groups:
            group["lr"] = lr_at(cfg, self.step_no, self.steps_per_epoch)
        idx = self.perm[i * cfg.batch_size:(i + 1) * cfg.batch_size].to(self.device)
        xb = augment(self.images[idx], self.g).float().div_(255.0)
        xb = xb.contiguous(memory_format=self.fmt)
        yb = self.labels[idx]
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.amp):
            loss, logits = _train_step(self.model, cfg, xb, yb, self.g, self.rng,
                                       split.num_classes)
        self.opt.zero_grad(set_to_none=True)
        loss.backward()
        self.opt.step()
        loss.item(), (logits.argmax(1) == yb).sum().item()  # the loop's bookkeeping syncs
        self.step_no += 1

    def chunk(self, steps: int) -> None:
        for _ in range(steps):
            self.step()


def interleaved(fns: dict[str, object], repeats: int) -> list[dict[str, float]]:
    """Per round, seconds of each fn; the order rotates so no fn always goes first or last."""
    for fn in fns.values():  # warm-up
        fn()
    names, rounds = list(fns), []
    for r in range(repeats):
        order = names[r % len(names):] + names[:r % len(names)]
        rounds.append({name: seconds(fns[name]) for name in order})
    return rounds


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--arch", default="preact-resnet18")
    p.add_argument("--width", type=int, default=16, help="architecture width (0: its default)")
    p.add_argument("--batch", type=int, default=128)
    p.add_argument("--pgd-steps", type=int, default=1, help="k of IAT(k)")
    p.add_argument("--steps", type=int, default=2, help="optimizer steps per timed chunk")
    p.add_argument("--repeats", type=int, default=5, help="interleaved rounds")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: torch's default)")
    p.add_argument("--device", default="cpu", help="cpu or cuda[:N]")
    args = p.parse_args()
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    set_precision(device, deterministic=False)  # as mi-bench train: autotuned kernels
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, device {device}"
          + (" (bf16 autocast, channels_last)" if device.type == "cuda" else ""))
    train_split = load_sample("train")
    base = TrainConfig(arch=args.arch, arch_kwargs={"width": args.width} if args.width else {},
                       batch_size=args.batch, pgd_steps=args.pgd_steps)
    trainers = {m: Trainer(dataclasses.replace(base, method=m), train_split, seed=1,
                           device=device)
                for m in METHODS}
    fns = {m: (lambda t=t: t.chunk(args.steps)) for m, t in trainers.items()}
    rounds = interleaved(fns, args.repeats)
    images = args.steps * args.batch
    label = {"erm": "ERM", "mixup": "mixup", "iat": f"IAT(k={args.pgd_steps})"}
    print(f"{args.arch} width {args.width or 'default'}, batch {args.batch}, {args.steps} steps "
          f"per chunk, {args.repeats} rounds")
    for m in METHODS:
        secs = [r[m] for r in rounds]
        print(f"  {label[m]:<10} {statistics.median(images / s for s in secs):8.1f} img/s "
              f"(median; rounds: {', '.join(f'{images / s:.0f}' for s in secs)})")
    mixup = [r["mixup"] / r["erm"] for r in rounds]
    iat = [r["iat"] / r["erm"] for r in rounds]
    print(f"  per-round mixup/ERM time: {', '.join(f'{x:.3f}' for x in mixup)}")
    print(f"  per-round IAT/ERM time:   {', '.join(f'{x:.3f}' for x in iat)}")
    print(f"mixup_overhead_vs_erm = {100 * (statistics.median(mixup) - 1):+.1f}%")
    print(f"iat_cost_vs_erm = {statistics.median(iat):.2f}x", flush=True)


if __name__ == "__main__":
    main()
