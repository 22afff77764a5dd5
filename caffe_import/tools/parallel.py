"""Caffe's multi-GPU training (``caffe train -gpu 0,1``, NCCL) as torch.distributed under
``torchrun``: one process per device, each a solver of its own.

What Caffe's ``NCCL`` sync does, and so this:

* every solver takes its own batches: a data layer keeps row ``k`` of its stream only when
  ``k % solvers == rank`` in TRAIN (``HDF5Data``'s ``Skip``), so the solvers together see
  the rows one solver with all their batches would see;
* after each iteration's forward/backward passes (Caffe's ``on_gradients_ready`` callback)
  the gradients are summed over the solvers and scaled by ``1 / solvers``, then every solver
  applies the same update (regularization and the rule on the averaged gradient);
* only the root solver (rank 0) tests, snapshots and logs its per-iteration lines; the
  others' log lines are silenced (``GLOG_minloglevel=1`` in their processes). The loss the
  root displays is its own batch's, as in Caffe.

Run: ``torchrun --nproc_per_node=2 -m caffe_import train -solver S -gpu 0,1`` (NCCL on the
GPUs; without ``-gpu``, gloo on the CPU).
"""
from __future__ import annotations

import os
from typing import Any, Sequence

import torch
import torch.distributed as dist

from ..errors import UsageError
from ..layers.data_read import DataLayer
from ..layers.hdf5_data import HDF5Data


def world() -> tuple[int, int, int]:
    """``(rank, world size, local rank)`` of this process as ``torchrun`` sets them."""
    env = os.environ
    return (int(env.get("RANK", "0")), int(env.get("WORLD_SIZE", "1")),
            int(env.get("LOCAL_RANK", "0")))


def start(gpus: Sequence[int]) -> tuple[int, int, list[int]]:
    """Join the process group when run by ``torchrun`` with several processes; returns
    ``(rank, size, the GPU ids this process uses)``. Several ``-gpu`` ids outside
    ``torchrun`` (or a count that differs from its processes) are a usage error."""
    rank, size, local = world()
    if size == 1:
        if len(gpus) > 1:
            raise UsageError(f"{len(gpus)} GPUs: run one process per GPU, "
                             f"torchrun --nproc_per_node={len(gpus)} -m caffe_import train ... "
                             f"-gpu {','.join(map(str, gpus))}")
        return 0, 1, list(gpus)
    if gpus and len(gpus) != size:
        raise UsageError(f"-gpu names {len(gpus)} GPUs for {size} processes; give one per process")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if gpus else "gloo")
    if rank:
        os.environ["GLOG_minloglevel"] = "1"  # Caffe logs its iterations from the root only
    return rank, size, [gpus[local]] if gpus else []


def shard_data(net: Any, rank: int, size: int) -> None:
    """Each solver its share of the rows of ``net``'s (a CaffeNet's) ``HDF5Data`` and
    ``Data`` layers (the layers Caffe's ``Skip`` shards; ``ImageData`` and ``WindowData``
    read everything in every solver, as Caffe's do)."""
    for module in net.modules():
        if isinstance(module, (HDF5Data, DataLayer)):
            module.solver_rank, module.solver_count = rank, size


def broadcast_params(net: Any) -> None:
    """Every solver starts from the root's weights (Caffe's NCCL broadcasts them)."""
    for info in net.learnable_params():
        dist.broadcast(info.param.data, 0)


def gradient_sync(net: Any, size: int) -> tuple[Any, Any]:
    """Caffe's ``(on_start, on_gradients_ready)`` for ``Solver.add_callback``: the second sums
    every learnable param's gradient over the solvers and divides by their number."""
    def on_gradients_ready() -> None:
        for info in net.learnable_params():
            p = info.param
            if p.grad is None:
                p.grad = torch.zeros_like(p)
            dist.all_reduce(p.grad)
            p.grad.mul_(1.0 / size)

    return (lambda: None), on_gradients_ready
