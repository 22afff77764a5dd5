"""Caffe's global mode: CPU or GPU, the device id, the random seed.

As in Caffe, the mode is process-wide and read when a net runs: a net built in CPU mode and
run after ``set_mode_gpu()`` moves to the GPU (its host arrays then become mirrors; see
``blob.py``).
"""
from __future__ import annotations

import time

import torch

from ..device import DeviceUnavailable, resolve_device

_state = {"gpu": False, "device": 0}


def set_mode_cpu() -> None:
    """Run nets on the CPU (the default)."""
    _state["gpu"] = False


def set_mode_gpu() -> None:
    """Run nets on CUDA device ``set_device(id)`` (default 0). Fails at once without CUDA."""
    try:
        resolve_device("cuda")
    except DeviceUnavailable:
        raise RuntimeError("set_mode_gpu: no CUDA device is available to torch here "
                           "(caffe_import runs pycaffe nets on torch's CUDA)") from None
    _state["gpu"] = True


def set_device(device_id: int) -> None:
    """Caffe's ``set_device``: the CUDA device GPU mode uses."""
    device_id = int(device_id)
    if device_id < 0:
        raise ValueError(f"set_device: device id must be >= 0, got {device_id}")
    _state["device"] = device_id


def set_random_seed(seed: int) -> None:
    """Seed the generator that fillers and Dropout draw from (torch's, on CPU and CUDA).
    Caffe's own random stream differs, so seeded values match Caffe's only in kind."""
    torch.manual_seed(int(seed))


def current_device() -> torch.device:
    """The torch device the mode names now."""
    if not _state["gpu"]:
        return torch.device("cpu")
    return resolve_device(f"cuda:{_state['device']}")


def solver_count() -> int:
    """Caffe's number of parallel solvers: always 1 (multi-GPU training is not implemented)."""
    return 1


def set_solver_count(count: int) -> None:
    """Caffe's ``set_solver_count``; only 1 is supported (no multi-GPU training)."""
    if int(count) != 1:
        raise NotImplementedError(f"set_solver_count({count}): multi-GPU training is not "
                                  "implemented; only one solver runs (solver_count() is 1)")


def solver_rank() -> int:
    """This solver's rank: always 0."""
    return 0


def set_solver_rank(rank: int) -> None:
    """Caffe's ``set_solver_rank``; only rank 0 exists here."""
    if int(rank) != 0:
        raise NotImplementedError(f"set_solver_rank({rank}): multi-GPU training is not "
                                  "implemented; the only solver has rank 0")


def set_multiprocess(multiprocess: bool) -> None:
    """Caffe's ``set_multiprocess`` flag; it changes nothing with a single solver."""


def has_nccl() -> bool:
    """No NCCL: multi-GPU training is not implemented."""
    return False


class NCCL:
    """Caffe's NCCL multi-GPU synchroniser; not implemented (``has_nccl()`` is False)."""

    def __init__(self, *args, **kwargs) -> None:
        raise NotImplementedError("caffe.NCCL: multi-GPU training is not implemented "
                                  "(has_nccl() is False; train with one solver)")

    @staticmethod
    def new_uid() -> str:
        raise NotImplementedError("caffe.NCCL.new_uid: multi-GPU training is not implemented")


class Timer:
    """Caffe's ``Timer``: ``start()``, ``stop()``, ``ms`` (milliseconds between them, or up to
    now while running). Caffe's GPU timer uses CUDA events; this one is the wall clock."""

    def __init__(self) -> None:
        self._start: float | None = None
        self._elapsed = 0.0
        self._running = False

    def start(self) -> None:
        self._start, self._running = time.perf_counter(), True

    def stop(self) -> None:
        if self._running:
            self._elapsed = time.perf_counter() - self._start
            self._running = False

    @property
    def ms(self) -> float:
        if self._running:
            self.stop()  # Caffe's MilliSeconds() stops a running timer first
        return self._elapsed * 1000.0
