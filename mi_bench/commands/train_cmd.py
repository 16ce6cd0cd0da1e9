"""``mi-bench train``: ERM, mixup or IAT on CIFAR-10/100, checkpointed every epoch."""

from __future__ import annotations

from pathlib import Path

import click

from mi_bench.commands.common import command_line, parse_eps, parse_key_values, seed_option
from mi_bench.commands.runtime import device_options, start
from mi_bench.errors import UserError


@click.command()
@click.option("--method", type=click.Choice(["erm", "mixup", "iat"]), default="mixup",
              show_default=True)
@click.option("--arch", default="preact-resnet18", show_default=True)
@click.option("--arch-opt", multiple=True, help="architecture option, e.g. width=16")
@click.option("--dataset", type=click.Choice(["cifar10", "cifar100"]), default="cifar10",
              show_default=True)
@click.option("--data-dir", default=None, help="data folder (else MI_BENCH_DATA, torchvision root)")
@click.option("--download", is_flag=True, help="download CIFAR through torchvision if missing")
@click.option("--preset", type=click.Choice(["fast", "paper"]), default="fast", show_default=True,
              help="fast: one-cycle for a CPU; paper: the MI paper's SGD recipe (200 epochs)")
@click.option("--epochs", type=click.IntRange(min=1), default=None)
@click.option("--batch-size", type=click.IntRange(min=1), default=None)
@click.option("--lr", type=float, default=None)
@click.option("--schedule", type=click.Choice(["onecycle", "step", "cosine"]), default=None)
@click.option("--weight-decay", type=float, default=None)
@click.option("--alpha", type=float, default=1.0, show_default=True, help="mixup Beta(alpha, alpha)")
@click.option("--pgd-steps", type=int, default=None,
              help="IAT: PGD steps k [fast 1, paper 10]; k=1 steps 1.25 eps, else 2/255")
@click.option("--eps", default="8/255", show_default=True, help="IAT: PGD radius (Linf)")
@seed_option()
@click.option("--n-train", type=click.IntRange(min=1), default=None,
              help="train on the first n images only")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="checkpoint file")
@click.option("--resume", is_flag=True, help="continue an interrupted run from OUT.resume.pt")
@click.option("--overwrite", is_flag=True, help="replace an existing OUT (never done otherwise)")
@click.option("--no-progress", is_flag=True)
@device_options
@click.option("--amp/--no-amp", default=None,
              help="bf16 autocast and channels_last [on for CUDA, off for the CPU]")
def train(method, arch, arch_opt, dataset, data_dir, download, preset, epochs, batch_size, lr,
          schedule, weight_decay, alpha, pgd_steps, eps, seed, n_train, out, resume, overwrite,
          no_progress, device_spec, tf32, amp) -> None:
    """Train ERM, mixup or interpolated adversarial training (IAT).

    Under ``torchrun --nproc-per-node G -m mi_bench.cli train ...`` it trains with
    DistributedDataParallel; --batch-size stays the global batch (G shares of it).
    """
    from mi_bench.data import load_split
    from mi_bench.results import check_output_dir
    from mi_bench.train import TrainConfig
    from mi_bench.train import preset as recipe
    from mi_bench.train import train as run_train

    settings = recipe(preset, method)
    overrides = {"epochs": epochs, "batch_size": batch_size, "lr": lr, "schedule": schedule,
                 "weight_decay": weight_decay, "pgd_steps": pgd_steps}
    settings.update({k: v for k, v in overrides.items() if v is not None})
    cfg = TrainConfig(method=method, arch=arch, arch_kwargs=parse_key_values(arch_opt, "--arch-opt"),
                      dataset=dataset, alpha=alpha, eps=parse_eps(eps),
                      seed=seed, **settings)
    cfg.validate()
    if resume and overwrite:
        raise UserError("--resume and --overwrite contradict each other; pick one")
    device, world = start(device_spec, tf32, deterministic=False)
    train_split = load_split(dataset, "train", data_dir, download, allow_sample=False)
    test_split = load_split(dataset, "test", data_dir, download, allow_sample=False)
    if n_train is not None:
        train_split = train_split.head(n_train)
    check_output_dir(Path(out).parent, "--out's folder")
    _, card = run_train(cfg, train_split, test_split, out, resume=resume, command=command_line(),
                        progress=not no_progress, final_eval=test_split, overwrite=overwrite,
                        device=device, amp=amp, channels_last=amp)
    if world.is_main:
        click.echo(f"clean accuracy {card['clean_acc']:.2%} on {card['clean_acc_n']} test "
                   f"images; checkpoint {out}")
