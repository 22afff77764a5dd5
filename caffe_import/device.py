"""The one place a device name becomes a ``torch.device``.

Caffe has a process-wide mode (CPU or GPU, and a device id); here each net lives on a torch
device. Every entry point (the ``--device`` option, ``Solver(device=)``, pycaffe's
``set_mode_gpu``, library callers) resolves a name here, so "auto" and the checks that a
device really exists mean the same everywhere.
"""
from __future__ import annotations

import torch

from .errors import UsageError


class DeviceUnavailable(UsageError):
    """A device was asked for that this machine does not have (or a name torch does not read)."""


def resolve_device(device: str | torch.device | None = None) -> torch.device:
    """``None`` or ``"auto"``: CUDA when available, else MPS, else CPU; anything else as torch
    reads it, checked against the machine (CUDA present, the index in range, MPS present).
    Raises :class:`DeviceUnavailable` (a ``UsageError``) naming what is missing."""
    if device is None or str(device) == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError, TypeError):
        raise DeviceUnavailable(f"{str(device)!r} is not a torch device (expected cpu, cuda, "
                                f"cuda:1, mps, ...)") from None
    if dev.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceUnavailable(
                f"device {device}: CUDA is not available on this machine (torch "
                f"{torch.__version__}, built for CUDA {torch.version.cuda or 'none'}); use cpu")
        count = torch.cuda.device_count()
        if dev.index is not None and dev.index >= count:
            raise DeviceUnavailable(f"device {device}: this machine has {count} CUDA device(s) "
                                    f"(cuda:0..cuda:{count - 1})")
    elif dev.type == "mps" and not _mps_available():
        raise DeviceUnavailable(f"device {device}: MPS is not available on this machine")
    return dev


def _mps_available() -> bool:
    mps = getattr(torch.backends, "mps", None)
    return mps is not None and mps.is_available()
