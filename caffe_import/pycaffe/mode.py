"""Caffe's global mode: CPU or GPU, the device id, the random seed.

As in Caffe, the mode is process-wide and read when a net runs: a net built in CPU mode and
run after ``set_mode_gpu()`` moves to the GPU (its host arrays then become mirrors; see
``blob.py``).
"""
from __future__ import annotations

import torch

_state = {"gpu": False, "device": 0}


def set_mode_cpu() -> None:
    """Run nets on the CPU (the default)."""
    _state["gpu"] = False


def set_mode_gpu() -> None:
    """Run nets on CUDA device ``set_device(id)`` (default 0). Fails at once without CUDA."""
    if not torch.cuda.is_available():
        raise RuntimeError("set_mode_gpu: no CUDA device is available to torch here "
                           "(caffe_import runs pycaffe nets on torch's CUDA)")
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
    return torch.device("cuda", _state["device"]) if _state["gpu"] else torch.device("cpu")
