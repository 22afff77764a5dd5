"""Data-parallel training and sharded evaluation, started with ``torchrun``: the process-group
helpers (a leaf module, as torchvision keeps ``init_distributed_mode`` in its utils); the entry
that trains under ``torchrun`` is :func:`fcn_repro.train.train_distributed`.

Training: every rank holds the whole net, sees its own images (rank ``r`` of ``w`` takes
forward pass ``k*w + r`` of the shared shuffled order) and ``DistributedDataParallel``
averages the gradients before Caffe's update runs identically on every rank. Caffe's own
multi-GPU training (``parallel.cpp``) also sums the diffs over solvers and scales them by
``1/solver_count``, so ``w`` processes with batch 1 each step like one process with
``iter_size`` ``w``.

Evaluation: the val split is dealt out round-robin (:func:`shard`), each rank fills its
confusion matrices, and the matrices are summed with ``all_reduce`` before scoring, so the
scores are exactly those of one process over the whole split:
``evaluate_net(net, dataset, plan, indices=shard(len(dataset)), all_reduce=True)``.

    torchrun --nproc_per_node 2 -m fcn_repro train --model voc-fcn32s --dataset sbd --root SBD ...

CPU runs use the ``gloo`` backend, CUDA runs ``nccl`` with one device per local rank.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any, Sequence

import torch
import torch.distributed as dist

from caffe_import.device import resolve_device

__all__ = ["DistInfo", "init_from_env", "shard", "wrap_ddp", "cleanup"]


@dataclass(frozen=True)
class DistInfo:
    rank: int
    world_size: int
    local_rank: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def init_from_env(device: str | torch.device | None = None, backend: str | None = None,
                  init_method: str | None = None) -> DistInfo:
    """Join the process group that ``torchrun`` describes (``RANK``, ``WORLD_SIZE``,
    ``LOCAL_RANK``, ``MASTER_ADDR``/``MASTER_PORT``); without those, a group of one.

    ``device`` defaults to ``cuda:<local rank>`` when CUDA is present, else ``cpu``; the
    backend to ``nccl`` for CUDA devices and ``gloo`` otherwise.
    """
    rank = int(os.environ.get("RANK", "0"))
    world = int(os.environ.get("WORLD_SIZE", "1"))
    local = int(os.environ.get("LOCAL_RANK", str(rank)))
    if device is None:
        dev = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        dev = resolve_device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    if world > 1 and not dist.is_initialized():
        backend = backend or ("nccl" if dev.type == "cuda" else "gloo")
        dist.init_process_group(backend=backend, init_method=init_method or "env://",
                                rank=rank, world_size=world)
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev)


def cleanup() -> None:
    """Leave the process group; a barrier first, so no rank tears its connections down
    while another still talks to it (gloo can abort a process on such a race)."""
    if dist.is_available() and dist.is_initialized():
        try:
            dist.barrier()
        finally:
            dist.destroy_process_group()


def shard(indices: Sequence[int] | int, rank: int | None = None, world_size: int | None = None) -> list[int]:
    """This rank's round-robin share of ``indices`` (or of ``range(indices)``)."""
    if rank is None or world_size is None:
        initialized = dist.is_available() and dist.is_initialized()
        rank = dist.get_rank() if initialized else 0
        world_size = dist.get_world_size() if initialized else 1
    items = list(range(indices)) if isinstance(indices, int) else list(indices)
    return items[rank::world_size]


def wrap_ddp(net: torch.nn.Module, device: torch.device | None = None,
             find_unused_parameters: bool = False) -> torch.nn.Module:
    """``DistributedDataParallel(net)`` on the net's device (identity in a group of one).

    DDP broadcasts rank 0's parameters at construction, so every rank starts from the same
    weights whatever its own initialisation.
    """
    if not (dist.is_available() and dist.is_initialized()) or dist.get_world_size() == 1:
        return net
    if device is None:
        params = list(net.parameters())
        device = params[0].device if params else torch.device("cpu")
    ids = [device.index] if device.type == "cuda" else None
    return torch.nn.parallel.DistributedDataParallel(net, device_ids=ids,
                                                     find_unused_parameters=find_unused_parameters)
