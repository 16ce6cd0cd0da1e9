"""Training: ERM, mixup (Zhang et al. 2018) and interpolated adversarial training (Lamb et al. 2019).

Reproducibility by construction: the model is initialized from ``seed``; every epoch draws its
shuffling, augmentation and mixing from a generator seeded by ``(seed, epoch)``, and the learning
rate is a pure function of the step. So resuming after epoch e replays exactly what an
uninterrupted run does (tests check that the weights are bit-identical).

On CUDA, training runs in bf16 autocast with channels_last tensors; every random draw still
comes from the CPU generators and is moved to the device, so the draws do not depend on it.
Under torchrun the model is wrapped in DistributedDataParallel: every rank draws the same global
batch (same generators) and trains on its 1/world share of it, so the global batch size and the
learning rate mean what they mean in one process.
"""

from __future__ import annotations

import dataclasses
import fcntl
import json
import math
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel
from tqdm import tqdm

from mi_bench import distributed
from mi_bench.attacks.pgd import pgd
from mi_bench.data import Split
from mi_bench.device import describe
from mi_bench.errors import UserError
from mi_bench.evaluate import correct_matrix
from mi_bench.models import Normalized, create_model, get_spec
from mi_bench.models.checkpoint import atomic_torch_save, safe_torch_load, save_checkpoint

METHODS = ("erm", "mixup", "iat")
SCHEDULES = ("onecycle", "step", "cosine")


@dataclass
class TrainConfig:
    method: str = "mixup"
    arch: str = "preact-resnet18"
    arch_kwargs: dict = field(default_factory=dict)
    dataset: str = "cifar10"
    epochs: int = 15
    batch_size: int = 128
    lr: float = 0.1
    schedule: str = "onecycle"
    milestones: tuple[int, ...] = (100, 150)
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    alpha: float = 1.0
    pgd_steps: int = 1
    eps: float = 8 / 255
    pgd_step_size: float | None = None  # None: 2/255, or 1.25 eps when k = 1 (FGSM-RS)
    seed: int = 0
    augment: bool = True
    heldout: int = 1000

    def validate(self) -> None:
        if self.method not in METHODS:
            raise UserError(f"unknown method {self.method!r}; expected one of {METHODS}")
        if self.schedule not in SCHEDULES:
            raise UserError(f"unknown schedule {self.schedule!r}; expected one of {SCHEDULES}")
        for name in ("epochs", "batch_size"):
            if getattr(self, name) < 1:
                raise UserError(f"--{name.replace('_', '-')} must be at least 1")
        for name in ("lr", "alpha"):
            if not math.isfinite(getattr(self, name)) or getattr(self, name) <= 0:
                raise UserError(f"--{name} must be a positive number, got {getattr(self, name)}")
        if not math.isfinite(self.weight_decay) or self.weight_decay < 0:
            raise UserError(f"--weight-decay must be >= 0, got {self.weight_decay}")
        if not 0 < self.eps <= 1:
            raise UserError(f"--eps must lie in (0, 1] (images live in [0, 1]), got {self.eps}")
        if self.seed < 0:
            raise UserError(f"--seed must be >= 0, got {self.seed}")
        get_spec(self.arch)  # an unknown architecture fails before any data is read
        if self.method == "iat" and self.pgd_steps < 1:
            raise UserError("--pgd-steps must be at least 1 for IAT")


def preset(name: str, method: str) -> dict:
    """Named recipes. ``paper``: the MI paper's SGD schedule; ``fast``: one-cycle for a CPU."""
    if name == "paper":
        return {"epochs": 200, "batch_size": 64, "lr": 0.1 if method == "iat" else 0.01,
                    "schedule": "step", "milestones": (100, 150), "momentum": 0.9, "weight_decay": 0.0,
                    "nesterov": False}
    if name == "fast":
        return {"epochs": 15, "batch_size": 128, "lr": 0.1, "schedule": "onecycle", "momentum": 0.9,
                    "weight_decay": 5e-4, "nesterov": True}
    raise UserError(f"unknown preset {name!r}; expected 'paper' or 'fast'")


def iat_step_size(cfg: TrainConfig) -> float:
    """PGD step: as given, else 2/255; a single step from a random start uses 1.25 eps
    (FGSM-RS, Wong et al. 2020), since one 2/255 step would barely leave the random start."""
    if cfg.pgd_step_size is not None:
        return cfg.pgd_step_size
    return 1.25 * cfg.eps if cfg.pgd_steps == 1 else 2 / 255


def lr_at(cfg: TrainConfig, step: int, steps_per_epoch: int) -> float:
    """Learning rate as a pure function of the global step (so resume needs no scheduler)."""
    total = cfg.epochs * steps_per_epoch
    if cfg.schedule == "step":
        epoch = step // steps_per_epoch
        return cfg.lr * 0.1 ** sum(epoch >= m for m in cfg.milestones)
    if cfg.schedule == "cosine":
        return 0.5 * cfg.lr * (1 + math.cos(math.pi * step / total))
    peak = 0.3 * total  # one-cycle: linear up to the peak, linear down to zero
    return cfg.lr * (step / peak if step < peak else max(total - step, 0) / (total - peak))


def soft_cross_entropy(logits: torch.Tensor, soft_targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy against a distribution over classes (mixup's mixed labels), batch mean."""
    return -(soft_targets * F.log_softmax(logits, dim=1)).sum(dim=1).mean()


def mix(x: torch.Tensor, y: torch.Tensor, lam: float, perm: torch.Tensor,
        num_classes: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Mixup of a batch with a permutation of itself: inputs and one-hot labels alike."""
    onehot = F.one_hot(y, num_classes).float()
    perm = perm.to(x.device)
    return lam * x + (1 - lam) * x[perm], lam * onehot + (1 - lam) * onehot[perm]


def augment(images: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Random crop with 4-pixel zero padding and horizontal flip, on a uint8 batch (on any
    device; the offsets and flips are drawn on the CPU)."""
    b, dev = images.shape[0], images.device
    padded = F.pad(images, (4, 4, 4, 4))
    oy = torch.randint(0, 9, (b,), generator=generator).to(dev)
    ox = torch.randint(0, 9, (b,), generator=generator).to(dev)
    ar = torch.arange(32, device=dev)
    rows = (oy[:, None] + ar)[:, :, None]
    cols = (ox[:, None] + ar)[:, None, :]
    out = padded.permute(0, 2, 3, 1)[torch.arange(b, device=dev)[:, None, None], rows, cols]
    out = out.permute(0, 3, 1, 2)
    flip = (torch.rand(b, generator=generator) < 0.5).to(dev)
    return torch.where(flip.view(-1, 1, 1, 1), out.flip(3), out).contiguous()


def accuracy(model: torch.nn.Module, split: Split, n: int | None = None,
             batch_size: int = 500) -> float:
    """Top-1 accuracy of a deterministic model on the first n examples of a split."""
    model.eval()
    n = len(split) if n is None else min(n, len(split))
    return correct_matrix(model, split.float_images(0, n), split.labels[:n], 1,
                          batch_size).float().mean().item()


def _train_step(model: Normalized, cfg: TrainConfig, x: torch.Tensor, y: torch.Tensor,
                g: torch.Generator, rng: np.random.Generator, num_classes: int,
                forward: torch.nn.Module | None = None):
    """One method's loss on one batch; returns (loss, logits on the clean or mixed batch).

    ``forward`` runs the training forwards (the DDP wrapper under torchrun); IAT's inner attack
    always uses the bare ``model``, since it differentiates the input, not the weights.
    """
    forward = forward or model
    if cfg.method == "erm":
        logits = forward(x)
        return F.cross_entropy(logits, y), logits
    if cfg.method == "mixup":
        xm, ym = mix(x, y, float(rng.beta(cfg.alpha, cfg.alpha)),
                     torch.randperm(len(y), generator=g), num_classes)
        logits = forward(xm)
        return soft_cross_entropy(logits, ym), logits
    model.eval()  # IAT: adversarial examples are made with the model in eval mode
    x_adv = pgd(model, x, y, eps=cfg.eps, steps=cfg.pgd_steps, step_size=iat_step_size(cfg),
                random_start=True, generator=g)
    model.train()
    xm, ym = mix(x, y, float(rng.beta(cfg.alpha, cfg.alpha)),
                 torch.randperm(len(y), generator=g), num_classes)
    xa, ya = mix(x_adv, y, float(rng.beta(cfg.alpha, cfg.alpha)),
                 torch.randperm(len(y), generator=g), num_classes)
    # one forward over both batches, as the official IAT code: BatchNorm sees them together
    logits_adv, logits = forward(torch.cat([xa, xm])).split(len(y))
    loss = 0.5 * soft_cross_entropy(logits_adv, ya) + 0.5 * soft_cross_entropy(logits, ym)
    return loss, logits


def _card(cfg: TrainConfig, model: Normalized, train: Split, command: str | None) -> dict:
    return {
        "arch": cfg.arch, "arch_kwargs": dict(cfg.arch_kwargs), "num_classes": train.num_classes,
        "dataset": cfg.dataset, "class_names": train.class_names,
        "mean": model.mean.flatten().tolist(), "std": model.std.flatten().tolist(),
        "method": cfg.method, "settings": _jsonable(dataclasses.asdict(cfg)), "seed": cfg.seed,
        "epochs_planned": cfg.epochs, "epochs": 0, "train_data": train.source,
        "train_n": len(train), "data_sha256": train.sha256(), "command": command,
        "torch": str(torch.__version__), "history": [],
    }


def _jsonable(d: dict) -> dict:
    return json.loads(json.dumps(d, default=list))


RESUME_KEYS = {"model", "optimizer", "epoch", "history", "settings", "data_sha256"}


def _settings_diff(old: dict, new: dict) -> str:
    keys = sorted(k for k in set(old) | set(new) if old.get(k) != new.get(k))
    return "; ".join(f"{k}: {old.get(k)!r} there, {new.get(k)!r} now" for k in keys[:4])


def _start_state(out: Path, resume_path: Path, card: dict, resume: bool,
                 overwrite: bool) -> dict | None:
    """The resume state to continue from, or None to start fresh; refuses to clobber a run."""
    if resume and resume_path.is_file():
        state = safe_torch_load(resume_path)
        if not isinstance(state, dict) or not RESUME_KEYS <= set(state):
            raise UserError(f"{resume_path}: not a mi-bench resume file (a checkpoint?); resume "
                            "state is written beside OUT as OUT.resume.pt")
        if state["settings"] != card["settings"]:
            raise UserError(f"{resume_path}: made with other settings ("
                            f"{_settings_diff(state['settings'], card['settings'])}); rerun with "
                            "the same options, or --overwrite to start over")
        if state["data_sha256"] != card["data_sha256"]:
            raise UserError(f"{resume_path}: made on other training data (sha256 "
                            f"{state['data_sha256'][:12]} there, {card['data_sha256'][:12]} now)")
        return state
    if out.exists() and not overwrite:
        if resume:
            raise UserError(f"{out} exists with no resume state ({resume_path.name}) beside it, "
                            "so it is not an interrupted run; pass --overwrite to replace it or "
                            "choose another --out")
        raise UserError(f"{out} exists; pass --resume to continue it, --overwrite to replace it, "
                        "or choose another --out")
    return None


@contextmanager
def _exclusive(out: Path) -> Iterator[None]:
    """One writer per checkpoint: a second ``train`` to the same OUT fails instead of racing."""
    lock = out.with_name(out.name + ".lock")
    with open(lock, "w") as f:
        try:
            fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            raise UserError(f"another mi-bench train is writing {out} (lock {lock})") from None
        try:
            yield
        finally:
            lock.unlink(missing_ok=True)


def train(cfg: TrainConfig, train_split: Split, heldout: Split | None, out: str | Path,
          resume: bool = False, command: str | None = None, progress: bool = True,
          final_eval: Split | None = None, overwrite: bool = False,
          _stop_after: int | None = None, device: torch.device | str | None = None,
          amp: bool | None = None, channels_last: bool | None = None
          ) -> tuple[Normalized, dict]:
    """Train to ``out`` (a checkpoint written every epoch, resume state beside it).

    A finished checkpoint is never replaced unless ``overwrite``. ``amp`` (bf16 autocast) and
    ``channels_last`` default to on for CUDA, off for the CPU. ``_stop_after`` simulates an
    interruption after that many epochs (for the resume test).
    """
    # one writer per checkpoint: under torchrun only rank 0 writes, so only it holds the lock
    with _exclusive(Path(out)) if distributed.world().is_main else nullcontext():
        return _train(cfg, train_split, heldout, Path(out), resume, command, progress,
                      final_eval, overwrite, _stop_after, device, amp, channels_last)


def _train(cfg: TrainConfig, train_split: Split, heldout: Split | None, out: Path,
           resume: bool, command: str | None, progress: bool, final_eval: Split | None,
           overwrite: bool, _stop_after: int | None, device, amp: bool | None,
           channels_last: bool | None) -> tuple[Normalized, dict]:
    cfg.validate()
    device = torch.device(device or "cpu")
    amp = device.type == "cuda" if amp is None else amp
    channels_last = device.type == "cuda" if channels_last is None else channels_last
    world = distributed.world()
    if cfg.batch_size % world.size:
        raise UserError(f"--batch-size {cfg.batch_size} does not split over {world.size} ranks; "
                        "use a multiple of the number of processes")
    if cfg.method == "iat" and cfg.pgd_step_size is None:  # the card records the step used
        cfg = dataclasses.replace(cfg, pgd_step_size=iat_step_size(cfg))
    out = Path(out)
    resume_path = out.with_name(out.name + ".resume.pt")
    num_classes = train_split.num_classes
    torch.manual_seed(cfg.seed)
    model = create_model(cfg.arch, num_classes, **cfg.arch_kwargs)
    model.to(device, **({"memory_format": torch.channels_last} if channels_last else {}))
    opt = torch.optim.SGD(model.parameters(), lr=cfg.lr, momentum=cfg.momentum,
                          weight_decay=cfg.weight_decay, nesterov=cfg.nesterov)
    card = _card(cfg, model, train_split, command)
    card.update(device=describe(device), precision="bf16 autocast" if amp else "fp32",
                world_size=world.size)
    start_epoch = 0
    state = _start_state(out, resume_path, card, resume, overwrite)
    if world.is_main:
        print(f"training {cfg.method} {cfg.arch} {cfg.arch_kwargs} on {len(train_split)} "
              f"images from {train_split.source}; {cfg.epochs} epochs, batch {cfg.batch_size}, "
              f"lr {cfg.lr} ({cfg.schedule}), seed {cfg.seed}, {world.size} x {device} -> {out}",
              file=sys.stderr)
    if state is not None:
        model.net.load_state_dict(state["model"])
        opt.load_state_dict(state["optimizer"])
        start_epoch, card["history"] = state["epoch"], state["history"]
        card["epochs"] = start_epoch
        if world.is_main:
            print(f"resuming {out} after epoch {start_epoch}", file=sys.stderr)

    steps = len(train_split) // cfg.batch_size
    if steps == 0:
        raise UserError(f"{len(train_split)} training images are fewer than one batch of "
                        f"{cfg.batch_size}")
    # after every check: constructing DDP waits for all ranks, so none has written anything yet
    forward = DistributedDataParallel(model) if world.size > 1 else model
    images, labels = train_split.images.to(device), train_split.labels.to(device)  # moved once
    fmt = torch.channels_last if channels_last else torch.contiguous_format
    for epoch in range(start_epoch, cfg.epochs):
        g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + epoch)
        rng = np.random.default_rng([cfg.seed, epoch])
        perm = torch.randperm(len(train_split), generator=g)
        model.train()
        t0 = time.time()
        totals = torch.zeros(3, dtype=torch.float64, device=device)  # loss sum, correct, seen
        bar = tqdm(range(steps), desc=f"{cfg.method} epoch {epoch + 1}/{cfg.epochs}",
                   disable=not progress or not world.is_main, leave=False, file=sys.stderr)
        for i in bar:
            for group in opt.param_groups:
                group["lr"] = lr_at(cfg, epoch * steps + i, steps)
            idx = perm[i * cfg.batch_size:(i + 1) * cfg.batch_size].to(device)
            xb = images[idx]
            xb = (augment(xb, g) if cfg.augment else xb).float().div_(255.0)
            yb = labels[idx]
            if world.size > 1:  # every rank drew the same global batch; each trains on its share
                xb, yb = xb[world.rank::world.size], yb[world.rank::world.size]
            xb = xb.contiguous(memory_format=fmt)
            with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                loss, logits = _train_step(model, cfg, xb, yb, g, rng, num_classes, forward)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            totals += torch.stack([loss.detach().double() * len(yb),
                                   (logits.argmax(1) == yb).sum().double(),
                                   totals.new_tensor(len(yb))])
            if i % 10 == 0 and world.is_main and progress:
                bar.set_postfix(loss=f"{(totals[0] / totals[2]).item():.3f}")
        if world.size > 1:
            torch.distributed.all_reduce(totals)
        loss_sum, correct, seen = totals.tolist()
        record = {"epoch": epoch + 1, "loss": round(loss_sum / seen, 4),
                  "train_acc": round(correct / seen, 4), "seconds": round(time.time() - t0, 1)}
        card["history"].append(record)
        card["epochs"] = epoch + 1
        if world.is_main:  # one writer; the others go on to the next epoch's first all-reduce
            if heldout is not None:
                record["heldout_acc"] = round(accuracy(model, heldout, cfg.heldout), 4)
            print(json.dumps(record), file=sys.stderr, flush=True)
            save_checkpoint(out, model, card)
            atomic_torch_save({"model": model.net.state_dict(), "optimizer": opt.state_dict(),
                               "epoch": epoch + 1, "history": card["history"],
                               "settings": card["settings"], "data_sha256": card["data_sha256"]},
                              resume_path)
        if _stop_after is not None and epoch + 1 >= _stop_after:
            return model, card
    if final_eval is not None and world.is_main:
        card["clean_acc"] = round(accuracy(model, final_eval), 4)
        card["clean_acc_n"] = len(final_eval)
        card["clean_acc_data"] = final_eval.source
        card["train_seconds"] = round(sum(r["seconds"] for r in card["history"]), 1)
        save_checkpoint(out, model, card)
    model.eval()
    return model, card
