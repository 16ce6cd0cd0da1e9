"""Where the work runs: ``--device`` resolution, floating-point precision, and device helpers.

Attacks and evaluation run in fp32 on every device: reduced precision can mask gradients, so
TF32 (which cuDNN turns on for convolutions by default) is off unless ``--tf32`` asks for it.
Random draws never happen on the device: every generator that feeds an attack or a defense is a
CPU ``torch.Generator`` whose draws are moved to the device afterwards, so a seed gives the same
partners, starts and targets on CPU and CUDA.
"""

from __future__ import annotations

import os
import re

import torch
from torch import nn

from mi_bench.errors import UserError


def cuda_available() -> bool:
    """One place to ask (tests stub it to exercise the CUDA branches on a CPU machine)."""
    return torch.cuda.is_available()


def resolve_device(spec: str | None = "auto") -> torch.device:
    """``auto``/``cpu``/``cuda``/``cuda:N`` -> a torch.device that exists, else a UserError.

    Under torchrun (``LOCAL_RANK`` set) ``cuda`` and ``auto`` give each rank its own GPU,
    ``cuda:LOCAL_RANK``; a fixed ``cuda:N`` would put every local rank on one card.
    """
    text = (spec or "auto").strip().lower()
    if text == "auto":
        text = "cuda" if cuda_available() else "cpu"
    if text == "cpu":
        return torch.device("cpu")
    m = re.fullmatch(r"cuda(?::(\d+))?", text)
    if m is None:
        raise UserError(f"bad --device {spec!r}; expected auto, cpu, cuda or cuda:N")
    if not cuda_available():
        built = "built without CUDA" if torch.version.cuda is None else "no CUDA device visible"
        raise UserError(f"--device {spec}: CUDA is not available (torch {torch.__version__}, "
                        f"{built}); use --device cpu or auto")
    local_procs = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if m.group(1) is not None and local_procs > 1:
        raise UserError(f"--device {spec} under torchrun with {local_procs} processes per node "
                        "would put them all on one GPU; use --device cuda (rank r takes cuda:r)")
    index = int(m.group(1)) if m.group(1) is not None else int(os.environ.get("LOCAL_RANK", "0"))
    count = torch.cuda.device_count()
    if index >= count:
        raise UserError(f"--device {spec}: CUDA device {index} does not exist ({count} visible)")
    return torch.device("cuda", index)


def set_precision(device: torch.device, tf32: bool = False, deterministic: bool = True) -> str:
    """fp32 (or TF32 when asked) for matmuls and convolutions; returns the label to record.

    ``deterministic`` picks deterministic cuDNN kernels, so a rerun on the same card repeats
    its gradients. Training passes False (it runs bf16 autocast and autotunes instead).
    """
    mode = "tf32" if tf32 and device.type == "cuda" else "ieee"
    matmul, conv = torch.backends.cuda.matmul, torch.backends.cudnn.conv
    if hasattr(matmul, "fp32_precision") and hasattr(conv, "fp32_precision"):
        matmul.fp32_precision = conv.fp32_precision = mode
    else:  # torch < 2.9: the legacy switches
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = mode == "tf32"
    if device.type == "cuda":
        torch.backends.cudnn.deterministic = deterministic
        torch.backends.cudnn.benchmark = not deterministic
        torch.cuda.set_device(device)
    return "tf32" if mode == "tf32" else "fp32"


def describe(device: torch.device) -> str:
    """``cpu`` or ``cuda:0 (NVIDIA H100 80GB HBM3)``: what a record and a log line say."""
    if device.type != "cuda":
        return str(device)
    return f"{device} ({torch.cuda.get_device_name(device)})"


def module_device(module: nn.Module) -> torch.device:
    """The device of a module's first parameter or buffer (CPU for a module without either)."""
    for t in module.parameters():
        return t.device
    for t in module.buffers():
        return t.device
    return torch.device("cpu")


def synchronize(device: torch.device) -> None:
    """Wait for queued CUDA work (timings); nothing to wait for on CPU."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def precision_label(device: torch.device) -> str:
    """What fp32 work on ``device`` runs at now: ``tf32`` or ``fp32`` (for the record)."""
    if device.type != "cuda":
        return "fp32"
    conv = getattr(torch.backends.cudnn.conv, "fp32_precision", None)
    if conv is not None:
        return "tf32" if conv == "tf32" else "fp32"
    return "tf32" if torch.backends.cudnn.allow_tf32 else "fp32"
