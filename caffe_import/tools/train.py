"""``caffe train``: train from a solver prototxt as Caffe's tool does, logging its lines.

What Caffe's ``train`` does, and so :func:`train`:

* the solver file's nets read their data (``HDF5Data``...); file names in the solver and the
  nets (``net:``, ``source:``, ``snapshot_prefix``) are relative to the working directory;
* ``weights`` (``-weights a.caffemodel,b.caffemodel``; else the solver's own ``weights``
  fields) are copied by layer name into the train net and every test net ("Finetuning
  from"); ``snapshot`` (``-snapshot <prefix>_iter_N.solverstate``) resumes: iteration, the
  learning-rate step, the history and the weights the state names. Not both (Caffe refuses);
* ``Solve``: test every ``test_interval`` iterations (and at 0 unless
  ``test_initialization: false``), ``display`` lines with the loss averaged over
  ``average_loss`` iterations and every train-net output, the learning rate, a snapshot every
  ``snapshot`` iterations and one after the last (``snapshot_after_train``); after
  ``max_iter`` one more forward of the train net for the final loss line (it draws a batch,
  as Caffe's does) and a final test;
* snapshots: ``<prefix>_iter_<N>.caffemodel`` + binary ``.solverstate`` (SolverState
  protobuf, ``learned_net`` naming the caffemodel as written), or with
  ``snapshot_format: HDF5`` ``.caffemodel.h5`` + ``.solverstate.h5``; either resumes.

Several GPUs (Caffe's NCCL data parallelism): one process per GPU under ``torchrun``
(``caffe_import.tools.parallel``).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import torch

from ..errors import UsageError
from ..net import DataReading
from ..proto import caffe_pb2
from ..pycaffe import glog, mode
from ..pycaffe.net import Net
from ..pycaffe.solver import SOLVERS, Solver, get_solver
from ..solver import load_solver_param, write_solverstate
from . import parallel


class ReadingNet(Net):
    """pycaffe's ``Net`` whose data layers read their sources, as Caffe's nets do (the
    solver file's ``random_seed`` seeds their random choices: :func:`_reading_net`)."""

    read_data = True


class CaffeTrainer(Solver):
    """pycaffe's solver as ``caffe train`` runs it: nets that read data, Caffe's snapshot
    files and log lines, Caffe's ``Solve``."""

    net_class = ReadingNet
    #: Caffe's ``-level`` and ``-stage``: the train net's state (``train_state``)
    train_level: int = 0
    train_stages: tuple[str, ...] = ()
    #: False in the other processes of a multi-GPU run: only the root tests and snapshots
    root: bool = True

    def _train_net(self, param) -> Net:
        param.train_state.level = self.train_level  # Caffe's train sets it from -level
        param.train_state.stage.extend(self.train_stages)
        return super()._train_net(param)

    def _check_snapshot_prefix(self) -> None:
        """Caffe's root solver alone probes the snapshot folder (``Solver::Init``): two
        solvers probing one file name would delete each other's probe."""
        if self.root:
            super()._check_snapshot_prefix()

    def snapshot(self) -> None:
        """Caffe's ``Snapshot``: the weights, then the solver state naming them."""
        if not self.root:
            return
        p = self.param
        h5 = p.snapshot_format == caffe_pb2.SolverParameter.HDF5
        stem = f"{p.snapshot_prefix}_iter_{self.iter}"
        model = stem + (".caffemodel.h5" if h5 else ".caffemodel")
        glog.info("solver.cpp:474" if h5 else "solver.cpp:464",
                  f"Snapshotting to {'HDF5' if h5 else 'binary proto'} file {model}")
        self.net.caffe_net.save_weights(model, h5=h5)
        state = stem + (".solverstate.h5" if h5 else ".solverstate")
        glog.info("sgd_solver.cpp:296" if h5 else "sgd_solver.cpp:284",
                  f"Snapshotting solver state to {'HDF5' if h5 else 'binary proto'} file {state}")
        engine = self._engine
        write_solverstate(state, iteration=self.iter, current_step=engine.current_step,
                          history=engine.history, learned_net=model)

    def solve(self, resume_file: str | os.PathLike | None = None) -> None:
        """pycaffe's ``solve`` (Caffe's ``Solver::Solve``, with its log lines); the other
        solvers of a multi-GPU run only step."""
        if not self.root:
            self.step(max(0, int(self.param.max_iter) - self.iter))
            return
        super().solve(resume_file)


def _reading_net(solver_path: str | os.PathLike) -> type[Net]:
    """The nets' class for this solver file: Caffe's ``random_seed`` (when >= 0) seeds the
    fillers (``Caffe::set_random_seed``) and the data layers' shuffles."""
    param = load_solver_param(os.fspath(solver_path))
    seed = int(param.random_seed) if param.random_seed >= 0 else None
    if seed is not None:
        mode.set_random_seed(seed)
    return type("ReadingNet", (ReadingNet,), {"read_data": DataReading(seed=seed)})


def _trainer_class(base: type[Solver]) -> type[CaffeTrainer]:
    return type(base.__name__, (CaffeTrainer, base), {"__doc__": base.__doc__})


#: one trainer per update rule, chosen by the solver file's ``type``
TRAINERS = tuple(_trainer_class(c) for c in SOLVERS)


def parse_gpus(text: str | None) -> list[int]:
    """Caffe's ``-gpu``: ``"0"``, ``"0,1"`` or ``"all"`` (every CUDA device); empty: CPU."""
    if not text:
        return []
    if text.strip() == "all":
        return list(range(torch.cuda.device_count()))
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise UsageError(f"-gpu takes device ids such as 0 or 0,1 or 'all', not {text!r}") from None


def use_devices(gpus: Sequence[int]) -> None:
    """Caffe's mode from ``-gpu``: the CPU, or the first of the GPUs (logged as Caffe does;
    the tools use one device per process)."""
    if not gpus:
        glog.info("caffe.cpp:197", "Use CPU.")
        mode.set_mode_cpu()
        return
    glog.info("caffe.cpp:204", f"Using GPUs {gpus[0]}")
    mode.set_device(gpus[0])
    mode.set_mode_gpu()


def weight_files(solver: Solver, weights: str | None) -> list[str]:
    """The caffemodels to finetune from: ``-weights`` (comma-separated), else the solver's
    own ``weights`` fields (each comma-separated too)."""
    given = [weights] if weights else list(getattr(solver.param, "weights", ()))
    return [name.strip() for item in given for name in item.split(",") if name.strip()]


def train(solver_path: str | os.PathLike, *, weights: str | None = None,
          snapshot: str | os.PathLike | None = None, gpus: Sequence[int] = (),
          level: int = 0, stages: Sequence[str] = ()) -> Solver:
    """Caffe's ``caffe train -solver S [-weights W] [-snapshot STATE] [-gpu ID] [-level L]
    [-stage S1,S2]``; returns the solver after ``max_iter`` iterations."""
    if snapshot and weights:
        raise UsageError("Give a snapshot to resume training or weights to finetune but not both.")
    if snapshot is not None and not Path(snapshot).is_file():
        raise FileNotFoundError(2, "solver state not found", os.fspath(snapshot))
    rank, size, gpus = parallel.start(list(gpus))
    use_devices(gpus)
    state = {"train_level": int(level), "train_stages": tuple(stages), "root": rank == 0,
             "net_class": _reading_net(solver_path)}
    solver = get_solver(solver_path, tuple(type(c.__name__, (c,), state) for c in TRAINERS))
    if not solver.root:
        solver.test_nets = []  # Caffe's root solver alone tests
    for name in ([] if snapshot else weight_files(solver, weights)):
        glog.info("solver.cpp:72", f"Finetuning from {name}")
        for net in [solver.net, *solver.test_nets]:
            net.copy_from(name)
    if snapshot:
        glog.info("caffe.cpp:235", f"Resuming from {snapshot}")
        solver.restore(snapshot)
    if size > 1:
        with solver.net.params_on_device() as net:  # the broadcast values are the fresh ones
            parallel.broadcast_params(net)
        parallel.shard_data(net, rank, size)
        solver.add_callback(*parallel.gradient_sync(net, size))
    glog.info("caffe.cpp:239", "Starting Optimization")
    solver.solve()
    glog.info("caffe.cpp:250", "Optimization Done.")
    return solver
