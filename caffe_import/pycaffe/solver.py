"""pycaffe's solvers (``caffe.SGDSolver(file)`` ... ``caffe.get_solver(file)``) over
``caffe_import.solver.Solver``, which holds Caffe's exact update rules.

What is Caffe's here and not in the library solver:

* the nets are pycaffe ``Net`` objects (``solver.net``, ``solver.test_nets``), built from the
  solver file's ``net``/``train_net``/``test_net``/... with file names relative to the current
  directory, as Caffe opens them; data comes from the nets' own layers (Python data layers),
  or from whatever the script wrote into the input blobs;
* ``SGDSolver(file)`` uses SGD whatever the file's ``type`` says (each class fixes its rule, as
  pycaffe's constructors do); ``get_solver(file)`` follows the file's ``type``;
* ``apply_update()`` advances ``iter``, as BVLC master's ``ApplyUpdate`` does;
* ``snapshot()`` writes Caffe's own files: ``<prefix>_iter_<N>.caffemodel`` (or ``.h5``) and a
  binary ``.solverstate`` protobuf that Caffe's ``--snapshot`` restores, and ``restore`` reads
  it back (and this project's safetensors state);
* ``add_callback(on_start, on_gradients_ready)``: called in each iteration before the
  forward/backward passes and before the update, as Caffe's ``Solver::Callback``.
"""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Callable, Sequence

import numpy as np

from ..errors import CaffeFormatError
from ..proto import caffe_pb2
from ..solver import Solver as _LibrarySolver, learning_rate, load_solver_param, write_solverstate
from . import glog
from .net import TEST, TRAIN, Net


def _snapshot_prefix(param, filename: str) -> None:
    """Caffe's ``UpgradeSnapshotPrefixProperty``: no prefix -> the solver file's name without
    extension; a folder prefix (an existing folder, or ending in '/') -> that folder plus the
    file's stem."""
    stem = Path(filename).stem if filename else "snapshot"
    if not param.snapshot_prefix:
        param.snapshot_prefix = str(Path(filename).with_suffix("")) if filename else stem
    elif param.snapshot_prefix.endswith(("/", os.sep)) or os.path.isdir(param.snapshot_prefix):
        param.snapshot_prefix = os.path.join(param.snapshot_prefix, stem)


class _Engine(_LibrarySolver):
    """The library solver, driving pycaffe nets the way Caffe's ``Solver::Step`` does: its
    public extension points (``forward_backward``, ``zero_grad``, ``display``, ``test_all``,
    ``snapshot``...) run the pycaffe nets and print Caffe's log lines."""

    def __init__(self, param, owner: "Solver") -> None:
        self.owner = owner
        super().__init__(param, owner.net.caffe_net, feed=lambda i: {},
                         snapshot_prefix=Path.cwd() / param.snapshot_prefix,
                         update_in_diff=True)
        self._clock, self._iterations_last = time.perf_counter(), 0

    def step(self, iters: int = 1, inputs=None) -> float:
        self._clock = time.perf_counter()  # Caffe's iteration_timer_.Start() in Step
        return super().step(iters, inputs)

    def display(self) -> None:
        """Caffe's display lines (``Solver::Step``): the smoothed loss, then every element of
        every train-net output."""
        now = time.perf_counter()
        lapse = now - self._clock
        per_s = (self.iter - self._iterations_last) / (lapse or 1)
        glog.info("solver.cpp:239", f"Iteration {self.iter} ({glog.num(per_s)} iter/s, "
                  f"{glog.num(lapse)}s/{self.param.display} iters), "
                  f"loss = {glog.num(self.smoothed_loss)}")
        self._clock, self._iterations_last = now, self.iter
        net = self.owner.net
        _output_lines("Train", "solver.cpp:258", [(name, net.blobs[name].data)
                                                  for name in net.outputs], net)

    def learning_rate(self) -> float:
        rate = super().learning_rate()
        if self.param.display and self.iter % self.param.display == 0:
            # SGDSolver::ApplyUpdate's line (every solver of the SGD family)
            glog.info("sgd_solver.cpp:113", f"Iteration {self.iter}, lr = {glog.num(rate)}")
        return rate

    def zero_grad(self) -> None:  # ClearParamDiffs, in place: the diff arrays stay valid
        self.owner.net.clear_param_diffs()

    def forward_backward(self, inputs) -> float:
        net = self.owner.net
        loss = net._forward(0, len(net._entries) - 1)
        net._backward(len(net._entries) - 1, 0)
        return loss

    def apply_update(self) -> float:
        with self.owner.net.params_on_device():
            return super().apply_update()

    def test_all(self) -> list[dict[str, Any]]:
        return [self.owner._test(i) for i in range(len(self.owner.test_nets))]

    def snapshot(self):
        return self.owner.snapshot()

    def restore(self, path, load_weights: bool = True) -> None:
        with self.owner.net.params_on_device():
            super().restore(path, load_weights)


class Solver:
    """A pycaffe solver: ``.net``, ``.test_nets``, ``.iter``, ``.step(n)``, ``.solve()``,
    ``.restore(file)``, ``.snapshot()``, ``.apply_update()``, ``.add_callback(a, b)``,
    ``.param``, ``.lr`` (SGD family)."""

    solver_type: str | None = None
    #: the class of ``net`` and ``test_nets``; its ``schema`` also reads the solver file
    net_class: type[Net] = Net
    net: Net  # the train net
    test_nets: list[Net]

    def __init__(self, filename: str | os.PathLike) -> None:
        filename = os.fspath(filename)
        if not os.path.isfile(filename):
            raise FileNotFoundError(f"solver file '{filename}' not found")
        param = load_solver_param(filename, schema=self.net_class.schema)
        if self.solver_type is not None:
            param.type = self.solver_type
        _snapshot_prefix(param, filename)
        self.param = param
        self.net = self._train_net(param)
        self.test_nets = self._test_nets(param)
        self._engine = _Engine(param, self)
        self._check_snapshot_prefix()

    def _check_snapshot_prefix(self) -> None:
        """Caffe's ``CheckSnapshotWritePermissions``: with ``snapshot`` set, a probe file next
        to the snapshots must be writable, or the solver is not made."""
        if not self.param.snapshot:
            return
        probe = Path(f"{self._engine.snapshot_prefix}_iter_{self.iter}.tempfile")
        try:
            probe.open("w").close()
            probe.unlink()
        except OSError as exc:
            raise OSError(exc.errno, f"Cannot write to snapshot prefix "
                          f"'{self.param.snapshot_prefix}'. Make sure that the directory "
                          f"exists and is writable", str(probe)) from exc

    # ---- nets, as Solver::InitTrainNet / InitTestNets -------------------------------
    @staticmethod
    def _net_source(message_or_file) -> Any:
        return message_or_file

    def _train_net(self, param) -> Net:
        fields = [f for f in ("train_net_param", "train_net", "net_param", "net")
                  if param.HasField(f)]
        if len(fields) != 1:
            raise CaffeFormatError(f"the solver must name exactly one train net (net, "
                                   f"train_net, net_param or train_net_param); it names "
                                   f"{fields or 'none'}")
        source = getattr(param, fields[0])
        state = param.train_state
        return self.net_class(source, TRAIN, level=int(state.level), stages=list(state.stage))

    def _test_nets(self, param) -> list[Net]:
        sources = list(param.test_net_param) + list(param.test_net)
        generic = None
        if param.HasField("net_param"):
            generic = param.net_param
        elif param.HasField("net"):
            generic = param.net
        n_generic = len(param.test_iter) - len(sources) if generic is not None else 0
        if n_generic < 0 or (generic is None and len(param.test_iter) < len(sources)):
            raise CaffeFormatError(f"test_iter must be given once per test net "
                                   f"({len(sources)} test nets, {len(param.test_iter)} test_iter)")
        sources += [generic] * n_generic
        if len(param.test_state) not in (0, len(sources)):
            raise CaffeFormatError("test_state must be given once per test net or not at all")
        nets = []
        for i, source in enumerate(sources):
            state = param.test_state[i] if len(param.test_state) else caffe_pb2.NetState()
            nets.append(self.net_class(source, TEST, level=int(state.level),
                                       stages=list(state.stage)))
        return nets

    # ---- running ----------------------------------------------------------------------
    @property
    def iter(self) -> int:
        return self._engine.iter

    @property
    def lr(self) -> float:
        """The learning rate of the coming update (``GetLearningRate``)."""
        return learning_rate(self.param, self._engine.iter, self._engine.current_step)[0]

    def step(self, iters: int) -> None:
        """``iters`` iterations of Caffe's ``Solver::Step``."""
        self._engine.step(int(iters))

    def solve(self, resume_file: str | os.PathLike | None = None) -> None:
        """Caffe's ``Solver::Solve``, with its log lines: optionally restore, step to
        ``max_iter``, a snapshot after the last step (``snapshot_after_train``); then, where
        ``display`` divides the iteration, one more forward of the train net for the final
        loss line (it draws a batch, as Caffe's does, and the train net's blobs keep that
        forward), and where ``test_interval`` divides it, a final test."""
        p, engine = self.param, self._engine
        glog.info("solver.cpp:289", f"Solving {self.net.caffe_net.net_param.name}")
        glog.info("solver.cpp:290", f"Learning Rate Policy: {p.lr_policy}")
        if resume_file is not None:
            glog.info("solver.cpp:296", f"Restoring previous solver status from {resume_file}")
            self.restore(resume_file)
        self.step(max(0, int(p.max_iter) - self.iter))
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.display and self.iter % p.display == 0:
            self.net.forward()  # the final loss line: one more forward, no update
            weights = self.net.blob_loss_weights
            loss = sum(float(w * self.net.blobs[name].data.sum())
                       for name, w in weights.items() if w)
            engine.update_smoothed_loss(loss)
            glog.info("solver.cpp:327", f"Iteration {self.iter}, loss = "
                                        f"{glog.num(engine.smoothed_loss)}")
        if p.test_interval and self.iter % p.test_interval == 0:
            engine.test_all()
        glog.info("solver.cpp:332", "Optimization Done.")

    def apply_update(self) -> None:
        """Caffe's ``ApplyUpdate`` on the current diffs; it advances ``iter`` (BVLC master
        counts updates there)."""
        self._engine.apply_update()

    def add_callback(self, on_start: Callable[[], Any],
                     on_gradients_ready: Callable[[], Any]) -> None:
        """Caffe's ``Solver::add_callback`` (the library solver calls them in ``step``)."""
        self._engine.add_callback(on_start, on_gradients_ready)

    def _test(self, index: int) -> dict[str, Any]:
        """Caffe's ``Solver::Test``: share the train weights, run ``test_iter`` forwards,
        average each output."""
        net = self.test_nets[index]
        glog.info("solver.cpp:347", f"Iteration {self.iter}, Testing net (#{index})")
        net.share_with(self.net)
        n = int(self.param.test_iter[index]) if index < len(self.param.test_iter) else 1
        sums: dict[str, np.ndarray] = {}
        for _ in range(n):
            net.forward()
            for name in net.outputs:
                value = net.blobs[name].data.astype(np.float64)
                sums[name] = sums[name] + value if name in sums else value.copy()
        result = {k: v / n for k, v in sums.items()}
        _output_lines("Test", "solver.cpp:414", list(result.items()), net)
        return result

    # ---- snapshots ----------------------------------------------------------------------
    def snapshot(self) -> None:
        """Write ``<prefix>_iter_<N>.caffemodel`` (or ``.caffemodel.h5``) and Caffe's binary
        ``<prefix>_iter_<N>.solverstate``."""
        weights, _ = self._engine.snapshot_paths()
        weights.parent.mkdir(parents=True, exist_ok=True)
        h5 = self.param.snapshot_format == caffe_pb2.SolverParameter.HDF5
        self.net.caffe_net.save_weights(str(weights), h5=h5)
        write_solverstate(str(weights).rsplit(".caffemodel", 1)[0] + ".solverstate",
                          iteration=self.iter, current_step=self._engine.current_step,
                          history=self._engine.history, learned_net=str(weights))

    def restore(self, state_file: str | os.PathLike) -> None:
        """Restore ``iter``, the learning-rate step, the history and the weights the state
        names (Caffe's binary ``.solverstate`` or this project's safetensors state)."""
        self._engine.restore(state_file)

    def share_weights(self, net: Net) -> None:
        """Caffe's ``share_weights``: ``net`` uses this solver's train-net weights."""
        net.share_with(self.net)


def _output_lines(kind: str, where: str, outputs: list[tuple[str, np.ndarray]],
                  net: Net) -> None:
    """Caffe's ``    Train net output #k: name = v (* w = w*v loss)`` lines (``Test`` too):
    one per element of each output, ``k`` counting elements across outputs."""
    k = 0
    for name, values in outputs:
        weight = float(net.blob_loss_weights.get(name, 0.0))
        for v in np.asarray(values, dtype=np.float32).reshape(-1):
            loss = (f" (* {glog.num(weight)} = {glog.num(np.float32(weight) * v)} loss)"
                    if weight else "")
            glog.info(where, f"    {kind} net output #{k}: {name} = {glog.num(v)}{loss}")
            k += 1


def _solver_class(name: str) -> type[Solver]:
    return type(f"{name}Solver", (Solver,), {"solver_type": name,
                                              "__doc__": f"Caffe's {name} solver."})


SGDSolver = _solver_class("SGD")
NesterovSolver = _solver_class("Nesterov")
AdaGradSolver = _solver_class("AdaGrad")
RMSPropSolver = _solver_class("RMSProp")
AdaDeltaSolver = _solver_class("AdaDelta")
AdamSolver = _solver_class("Adam")


SOLVERS = (SGDSolver, NesterovSolver, AdaGradSolver, RMSPropSolver, AdaDeltaSolver, AdamSolver)


def get_solver(filename: str | os.PathLike, solvers: Sequence[type[Solver]] = SOLVERS) -> Solver:
    """A solver of the type the file names (``type``, or legacy ``solver_type``): one of
    ``solvers`` (``caffe-import run --fork`` gives its script classes bound to the fork's
    schema)."""
    param = load_solver_param(os.fspath(filename), schema=solvers[0].net_class.schema)
    kind = param.type or "SGD"
    classes = {c.solver_type: c for c in solvers}
    if kind not in classes:
        raise CaffeFormatError(f"unknown solver type '{kind}'", path=filename)
    return classes[kind](filename)
