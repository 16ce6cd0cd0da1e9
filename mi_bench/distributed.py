"""Ranks under torchrun: which batches this process attacks, and waiting for the others.

torchrun and torch.distributed are the whole engine: torchrun starts the processes (on one node
or, through its rendezvous, on several) and sets ``RANK``/``WORLD_SIZE``/``LOCAL_RANK``; this
module joins them into one process group (NCCL on CUDA, gloo on CPU) and answers two questions,
"is batch b mine?" (``b % world_size == rank``) and "has every rank finished?" (a barrier).
Results travel through the shared result store, never through collectives, so a rank killed
mid-run loses only its unfinished batch and a rerun (with any number of ranks) resumes.
"""

from __future__ import annotations

import atexit
import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from mi_bench.errors import UserError

# how long a rank waits at a barrier for the slowest one (a long attack batch on a slow rank);
# MI_BENCH_DIST_TIMEOUT (seconds) overrides it
DEFAULT_TIMEOUT_S = 24 * 3600
_current: World | None = None


@dataclass(frozen=True)
class World:
    """This process's place among the ranks of one run (rank 0 of 1 without torchrun)."""

    rank: int = 0
    size: int = 1
    device: str = "cpu"

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    def owns(self, index: int) -> bool:
        """Batch ``index`` is this rank's: a fixed round-robin over the batches of a run."""
        return index % self.size == self.rank

    def barrier(self) -> None:
        """Wait until every rank gets here (no-op for a single process)."""
        if self.size > 1:
            if self.device.startswith("cuda"):
                dist.barrier(device_ids=[torch.device(self.device).index or 0])
            else:
                dist.barrier()

    def label(self) -> str:
        return f" [rank {self.rank}/{self.size}]" if self.size > 1 else ""


def launched() -> bool:
    """Started by torchrun (or any launcher that sets the torch.distributed environment)."""
    return int(os.environ.get("WORLD_SIZE", "1")) > 1


def init(device: torch.device) -> World:
    """Join the process group torchrun set up (once per process); a single process needs none."""
    global _current
    if not launched():
        _current = World(device=str(device))
        return _current
    if not dist.is_initialized():
        timeout = os.environ.get("MI_BENCH_DIST_TIMEOUT", str(DEFAULT_TIMEOUT_S))
        try:
            seconds = float(timeout)
        except ValueError:
            raise UserError(f"MI_BENCH_DIST_TIMEOUT={timeout!r}: expected seconds") from None
        backend = "nccl" if device.type == "cuda" else "gloo"
        kwargs = {"device_id": device} if device.type == "cuda" else {}
        dist.init_process_group(backend, timeout=timedelta(seconds=seconds), **kwargs)
        atexit.register(_leave)
    _current = World(dist.get_rank(), dist.get_world_size(), str(device))
    return _current


def world() -> World:
    """The World ``init`` joined; a single process when no command called it (library use)."""
    return _current if _current is not None else World()


def _leave() -> None:
    if dist.is_initialized():
        dist.destroy_process_group()
