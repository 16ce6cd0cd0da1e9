"""``--device`` and ``--tf32``, shared by the commands that compute, and joining torchrun's ranks."""

from __future__ import annotations

from typing import TYPE_CHECKING

import click

if TYPE_CHECKING:  # torch loads only when a command runs: `mi-bench --help` stays quick
    import torch

    from mi_bench.distributed import World

DEVICE_HELP = "auto (CUDA when available), cpu, cuda or cuda:N; under torchrun cuda = cuda:LOCAL_RANK"


def device_options(fn):
    """--device and --tf32 (fp32 stays the default on CUDA: reduced precision can mask gradients)."""
    opts = [
        click.option("--device", "device_spec", default="auto", show_default=True,
                     help=DEVICE_HELP),
        click.option("--tf32", is_flag=True,
                     help="CUDA: allow TF32 matmuls/convolutions (faster, less exact) [fp32]"),
    ]
    for opt in reversed(opts):
        fn = opt(fn)
    return fn


def start(device_spec: str, tf32: bool = False, deterministic: bool = True,
          quiet: bool = False) -> tuple[torch.device, World]:
    """Resolve the device, set its precision, join torchrun's ranks if launched by it.

    Call it after every option is validated and before any work: a bad --device fails here.
    """
    from mi_bench import distributed
    from mi_bench.device import describe, resolve_device, set_precision

    device = resolve_device(device_spec)
    if tf32 and device.type != "cuda":
        click.echo("note: --tf32 applies to CUDA only; running in fp32 on the CPU", err=True)
    set_precision(device, tf32, deterministic)
    world = distributed.init(device)
    if world.size > 1 and world.is_main and not quiet:
        click.echo(f"torchrun: {world.size} ranks; rank 0 on {describe(device)}", err=True)
    return device, world
