"""Caffe's solvers, exactly: lr policies, regularization, clipping and the update rules.

A :class:`Solver` is driven by a ``SolverParameter`` (from ``caffe_import.io.read_solver`` or
built in code) and trains a net that follows the ``CaffeNet`` contract
(``learnable_params()``, ``forward(**inputs)``, ``total_loss(blobs)``, ``weights()``,
``load_weights()``, ``save_weights()``).

Where Caffe differs from ``torch.optim`` (and why this is not ``torch.optim.SGD``):

* SGD keeps the learning rate *inside* the momentum history: ``v = momentum*v + lr*g`` and
  ``w -= v``. torch keeps ``b = momentum*b + g`` and steps ``lr*b``; the two only agree while
  the learning rate is constant, so every ``step``/``multistep``/``poly`` drop would diverge.
* Gradients are clipped (global L2 norm over every learnable param) on the *sum* of the
  ``iter_size`` passes, *before* that sum is divided by ``iter_size``.
* L1 regularization (``regularization_type: "L1"``) adds ``decay*sign(w)``.
* Adam adds ``delta`` to the *uncorrected* ``sqrt(v)`` and folds both bias corrections into
  the step size.
* The learning rate is computed in Caffe's mix of float and double and rounded to float32;
  ``local_rate = rate*lr_mult`` and ``local_decay = weight_decay*decay_mult`` are float32
  products, as in Caffe.

The order of one iteration (``Solver::Step`` / ``SGDSolver::ApplyUpdate``): zero the diffs,
maybe test, ``iter_size`` forward/backward passes (loss averaged for display), learning rate
from the current ``iter``, clip, then per param normalize (``1/iter_size``), regularize,
compute the update value, ``w -= diff``; then ``iter += 1`` and maybe snapshot.

Snapshots write the weights as a caffemodel (``<prefix>_iter_<N>.caffemodel``, via the net's
``save_weights``) and the solver state (iter, current_step, history) as safetensors
(``<prefix>_iter_<N>.solverstate.safetensors``): plain tensors plus string metadata, no
pickle. Caffe's own binary ``.solverstate`` can be restored too.
"""
from __future__ import annotations

import json
import logging
import math
import os
from collections import OrderedDict
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file

from .device import resolve_device
from .errors import CaffeFormatError
from .io import read_solver
from .io.atomic import atomic_path
from .net import CaffeNet
from .proto import caffe_pb2
from .proto.schema import Schema, is_message

__all__ = [
    "Solver", "learning_rate", "load_solver_param", "SOLVER_TYPES", "STATE_SUFFIX",
    "write_solverstate", "read_solverstate",
]

#: update rules Caffe registers (``REGISTER_SOLVER_CLASS``), by their ``type`` string
SOLVER_TYPES = ("SGD", "Nesterov", "AdaGrad", "RMSProp", "AdaDelta", "Adam")
#: extension of our solver-state files (Caffe's is ``.solverstate``, a protobuf)
STATE_SUFFIX = ".solverstate.safetensors"
STATE_FORMAT = "caffe_import.solverstate/1"
_LEGACY_TYPES = {0: "SGD", 1: "Nesterov", 2: "AdaGrad", 3: "RMSProp", 4: "AdaDelta", 5: "Adam"}

float32 = np.float32  # Caffe's Dtype: float32 scalars keep numpy arithmetic in float32
log = logging.getLogger(__name__)
Feed = Callable[[int], Mapping[str, Any]]


# --------------------------------------------------------------------------------------
# parameters and learning rate
# --------------------------------------------------------------------------------------

def load_solver_param(source: "caffe_pb2.SolverParameter | str | os.PathLike",
                      schema: Schema | None = None) -> "caffe_pb2.SolverParameter":
    """A SolverParameter from itself, a path or prototxt text (upgraded like Caffe does);
    text is read with ``schema`` when given (else the schema is chosen by its content)."""
    if is_message(source, "SolverParameter"):  # of BVLC's schema or a Caffe fork's
        param = type(source)()
        param.CopyFrom(source)
    else:
        param = read_solver(source, schema=schema)  # the io package owns parsing and upgrading
    if not param.HasField("type") and param.HasField("solver_type"):
        param.type = _LEGACY_TYPES.get(int(param.solver_type), "SGD")
    return param


def learning_rate(param: "caffe_pb2.SolverParameter", iteration: int,
                  current_step: int = 0) -> tuple[float, int]:
    """Caffe's ``SGDSolver::GetLearningRate`` at ``iteration`` (completed updates).

    Returns ``(rate, current_step)``: ``step`` recomputes the step index, ``multistep``
    advances it by at most one per call when ``iteration >= stepvalue[current_step]`` (so
    it must be called once per iteration, as Caffe does), other policies leave it alone.
    The rate is rounded to float32 as Caffe's ``Dtype rate`` is.
    """
    policy = param.lr_policy
    base_lr, gamma, power = float32(param.base_lr), float32(param.gamma), float32(param.power)
    it = int(iteration)

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise CaffeFormatError(f"lr_policy '{policy}' needs {what}")

    if policy == "fixed":
        rate = float(base_lr)
    elif policy == "step":
        need(param.stepsize > 0, "stepsize > 0")
        need(gamma >= 0, "gamma >= 0")
        current_step = it // int(param.stepsize)
        rate = float(base_lr) * float(gamma) ** current_step  # pow(float, int) is double
    elif policy == "exp":
        need(gamma >= 0, "gamma >= 0")
        rate = float(base_lr) * float(gamma) ** it
    elif policy == "inv":
        need(gamma >= 0, "gamma >= 0")
        with np.errstate(all="ignore"):
            base = float32(1) + gamma * float32(it)
            rate = float(base_lr * np.power(base, -power, dtype=float32))
    elif policy == "multistep":
        if current_step < len(param.stepvalue) and it >= param.stepvalue[current_step]:
            current_step += 1
        need(gamma >= 0, "gamma >= 0")
        rate = float(base_lr) * float(gamma) ** current_step
    elif policy == "poly":
        need(param.max_iter > 0, "max_iter > 0")
        with np.errstate(all="ignore"):
            frac = float32(1) - float32(it) / float32(param.max_iter)
            rate = float(base_lr * np.power(frac, power, dtype=float32))
    elif policy == "sigmoid":
        need(gamma >= 0, "gamma >= 0")
        need(param.stepsize > 0, "stepsize > 0")
        with np.errstate(all="ignore"):
            e = np.exp(-gamma * (float32(it) - float32(param.stepsize)), dtype=float32)
            rate = float(base_lr * (float32(1) / (float32(1) + e)))
    elif not policy:
        raise CaffeFormatError("solver has no lr_policy (Caffe treats this as fatal)")
    else:
        raise CaffeFormatError(f"unknown lr_policy '{policy}' (expected fixed, step, exp, inv, "
                               "multistep, poly or sigmoid)")
    return float(float32(rate)), current_step


# --------------------------------------------------------------------------------------
# update rules: each turns the (clipped, normalized, regularized) diff into the update value
# --------------------------------------------------------------------------------------

def _sgd(g: torch.Tensor, hist: list[torch.Tensor], p: "caffe_pb2.SolverParameter",
         local_rate: float, t: int) -> torch.Tensor:
    v = hist[0]
    v.mul_(float(float32(p.momentum))).add_(g, alpha=local_rate)  # axpby: scale, then axpy
    return v  # the history is the update (Caffe copies it into the diff)


def _nesterov(g, hist, p, local_rate, t):
    mu = float(float32(p.momentum))
    v = hist[0]
    v_prev = v.clone()
    v.mul_(mu).add_(g, alpha=local_rate)
    return v.mul(1.0 + mu).sub_(v_prev, alpha=mu)  # step back, then over-step


def _adagrad(g, hist, p, local_rate, t):
    h = hist[0]
    h.add_(g * g)
    return g.div(h.sqrt().add_(float(float32(p.delta)))).mul_(local_rate)


def _rmsprop(g, hist, p, local_rate, t):
    rho = float(float32(p.rms_decay))
    s = hist[0]
    s.mul_(rho).add_(g * g, alpha=float(float32(1) - float32(rho)))
    return g.div(s.sqrt().add_(float(float32(p.delta)))).mul_(local_rate)


def _adadelta(g, hist, p, local_rate, t):
    rho, delta = float(float32(p.momentum)), float(float32(p.delta))
    one_minus = float(float32(1) - float32(rho))
    a, b = hist  # running mean of g^2, running mean of update^2
    a.mul_(rho).add_(g * g, alpha=one_minus)
    u = g * ((b + delta) / (a + delta)).sqrt_()  # one sqrt of the ratio, as Caffe
    b.mul_(rho).add_(u * u, alpha=one_minus)
    return u.mul_(local_rate)


def _adam(g, hist, p, local_rate, t):
    b1, b2 = float(float32(p.momentum)), float(float32(p.momentum2))
    m, v = hist
    m.mul_(b1).add_(g, alpha=float(float32(1) - float32(b1)))
    v.mul_(b2).add_(g * g, alpha=float(float32(1) - float32(b2)))
    correction = float32(math.sqrt(1.0 - b2 ** t) / (1.0 - b1 ** t))  # double, stored as float
    step = float(float32(local_rate) * correction)
    return m.div(v.sqrt().add_(float(float32(p.delta)))).mul_(step)


_RULES = {"SGD": (_sgd, 1), "Nesterov": (_nesterov, 1), "AdaGrad": (_adagrad, 1),
          "RMSProp": (_rmsprop, 1), "AdaDelta": (_adadelta, 2), "Adam": (_adam, 2)}


def _check_param(p: "caffe_pb2.SolverParameter") -> None:
    if p.type not in _RULES:
        raise CaffeFormatError(f"unknown solver type '{p.type}' (expected one of {', '.join(SOLVER_TYPES)})")
    if p.regularization_type not in ("L1", "L2"):
        raise CaffeFormatError(f"unknown regularization_type '{p.regularization_type}' (expected L1 or L2)")
    if p.iter_size < 1:
        raise CaffeFormatError(f"iter_size must be >= 1, got {p.iter_size}")
    if p.type in ("AdaGrad", "RMSProp") and p.momentum != 0:
        raise CaffeFormatError(f"{p.type} needs momentum 0 (Caffe refuses momentum {p.momentum})")
    if p.type == "RMSProp" and not (0 <= p.rms_decay < 1):
        raise CaffeFormatError(f"RMSProp needs 0 <= rms_decay < 1, got {p.rms_decay}")
    if p.average_loss < 1:
        raise CaffeFormatError(f"average_loss must be >= 1, got {p.average_loss}")


# --------------------------------------------------------------------------------------
# the solver
# --------------------------------------------------------------------------------------

class Solver:
    """Trains a net with Caffe's solver semantics.

    ``param``: SolverParameter, path or text. ``net``: a CaffeNet (or anything with the same
    surface); when omitted it is built from the solver's ``net`` / ``train_net`` /
    ``net_param`` / ``train_net_param`` in the TRAIN phase (relative paths are tried against
    ``root``, default the solver file's folder). ``feed(pass_index)`` returns the input blobs
    of forward pass ``pass_index`` (``iter*iter_size + i``), so a resumed run continues its
    data order. ``model`` is what is called for the forward pass (a
    ``DistributedDataParallel`` wrapper of ``net``, say; default ``net``). ``test_nets`` is a
    list of ``(net, feed)`` run every ``test_interval`` for ``test_iter[i]`` batches;
    ``test_hook(solver)`` is called at the same points (both optional).

    Caffe's ``Solver::Callback``: :meth:`add_callback` ``(on_start, on_gradients_ready)``;
    each iteration calls every ``on_start`` after clearing the diffs (and testing), before the
    forward/backward passes, and every ``on_gradients_ready`` after them (and the display),
    before :meth:`apply_update`. ``update_in_diff=True`` leaves each param's update value in
    its ``grad`` after :meth:`apply_update`, as Caffe's ``ApplyUpdate`` leaves it in the diff
    (pycaffe scripts read it there); by default the diff is left as the update rule found it.
    """

    def __init__(self, param: "caffe_pb2.SolverParameter | str | os.PathLike", net: Any = None, *,
                 feed: Feed | None = None, model: Any = None,
                 test_nets: Sequence[tuple[Any, Feed]] = (),
                 test_hook: Callable[["Solver"], Any] | None = None,
                 device: str | torch.device | None = None,
                 root: str | os.PathLike | None = None,
                 snapshot_prefix: str | os.PathLike | None = None,
                 on_iteration: Callable[["Solver", dict], Any] | None = None,
                 update_in_diff: bool = False) -> None:
        if root is None and isinstance(param, (str, os.PathLike)) and Path(param).is_file():
            root = Path(param).resolve().parent
        self.root = Path(root) if root is not None else Path.cwd()
        self.param = load_solver_param(param)
        _check_param(self.param)
        self.net = net if net is not None else self._build_train_net()
        if device is not None:
            self.net.to(resolve_device(device))
        self.model = model if model is not None else self.net
        self.feed = feed
        self.test_nets = list(test_nets)
        self.test_hook = test_hook
        self.on_iteration = on_iteration
        self.update_in_diff = update_in_diff
        self.callbacks: list[tuple[Callable[[], Any], Callable[[], Any]]] = []
        prefix = snapshot_prefix if snapshot_prefix is not None else (self.param.snapshot_prefix or "snapshot")
        self.snapshot_prefix = Path(prefix) if Path(prefix).is_absolute() else self.root / prefix
        self.iter = 0
        self.current_step = 0
        self.rate = 0.0
        self.losses: list[float] = []
        self.smoothed_loss = 0.0
        self._start_iter = 0
        self.infos = list(self.net.learnable_params())
        rule, slots = _RULES[self.param.type]
        self._rule = rule
        self.history: list[torch.Tensor] = [
            torch.zeros_like(info.param.detach(), memory_format=torch.contiguous_format)
            for _ in range(slots) for info in self.infos]

    # ---- construction ---------------------------------------------------------------
    def _build_train_net(self) -> Any:
        p = self.param
        if p.HasField("net_param"):
            source: Any = p.net_param
        elif p.HasField("train_net_param"):
            source = p.train_net_param
        elif p.net or p.train_net:
            name = p.net or p.train_net
            source = Path(name) if Path(name).is_file() else self.root / name
            if not Path(source).is_file():
                raise CaffeFormatError(f"train net file '{name}' not found (also tried {source})")
            source = str(source)
        else:
            raise CaffeFormatError("solver names no train net (net, train_net, net_param or train_net_param)")
        state = p.train_state
        return CaffeNet(source, phase="train", stages=tuple(state.stage), level=int(state.level))

    @property
    def device(self) -> torch.device:
        return self.infos[0].param.device if self.infos else torch.device("cpu")

    def add_callback(self, on_start: Callable[[], Any],
                     on_gradients_ready: Callable[[], Any]) -> None:
        """Caffe's ``Solver::add_callback``: ``on_start()`` before each iteration's
        forward/backward passes, ``on_gradients_ready()`` before its update."""
        self.callbacks.append((on_start, on_gradients_ready))

    # ---- one iteration ----------------------------------------------------------------
    def learning_rate(self) -> float:
        """The rate of the coming update (advances ``current_step`` for multistep)."""
        rate, self.current_step = learning_rate(self.param, self.iter, self.current_step)
        return rate

    def _inputs_on_device(self, inputs: Mapping[str, Any]) -> dict[str, torch.Tensor]:
        dev = self.device
        out = {}
        for k, v in inputs.items():
            t = v if isinstance(v, torch.Tensor) else torch.as_tensor(np.asarray(v))
            out[k] = t.to(dev, non_blocking=True)
        return out

    def forward_backward(self, inputs: Mapping[str, Any]) -> float:
        """One forward and backward pass; gradients accumulate into ``param.grad``."""
        blobs = self.model(**self._inputs_on_device(inputs))
        loss = self.net.total_loss(blobs)
        if loss.requires_grad:
            loss.backward()
        return float(loss.detach())

    def zero_grad(self) -> None:
        for info in self.infos:
            info.param.grad = None

    def step(self, iters: int = 1, inputs: Mapping[str, Any] | None = None) -> float:
        """Take ``iters`` iterations; returns the last iteration's (iter_size-averaged) loss.

        ``inputs`` (if given) are used for every forward pass instead of ``feed``.
        """
        if inputs is None and self.feed is None:
            raise ValueError("Solver.step needs inputs or a feed")
        p = self.param
        stop = self.iter + iters
        self.losses, self.smoothed_loss, self._start_iter = [], 0.0, self.iter
        loss = float("nan")
        while self.iter < stop:
            self.zero_grad()
            if p.test_interval and self.iter % p.test_interval == 0 and (self.iter > 0 or p.test_initialization):
                self.test_all()
            for on_start, _ in self.callbacks:
                on_start()
            loss = 0.0
            for i in range(p.iter_size):
                batch = inputs if inputs is not None else self.feed(self.iter * p.iter_size + i)
                sync = getattr(self.model, "no_sync", None)
                if sync is not None and i < p.iter_size - 1:
                    with sync():  # DDP: all-reduce only on the last pass of the iteration
                        loss += self.forward_backward(batch)
                else:
                    loss += self.forward_backward(batch)
            loss /= p.iter_size
            self.update_smoothed_loss(loss)
            record = {"iter": self.iter, "loss": loss, "smoothed_loss": self.smoothed_loss}
            if p.display and self.iter % p.display == 0:
                self.display()
            for _, on_gradients_ready in self.callbacks:
                on_gradients_ready()
            self.apply_update()
            record["lr"] = self.rate
            if self.on_iteration is not None:
                self.on_iteration(self, record)
            if p.snapshot and self.iter % p.snapshot == 0:
                self.snapshot()
        return loss

    def display(self) -> None:
        """Caffe's display line (the smoothed loss), every ``display`` iterations."""
        log.info("Iteration %d, loss = %g", self.iter, self.smoothed_loss)

    def update_smoothed_loss(self, loss: float) -> None:
        """Caffe's ``UpdateSmoothedLoss``: ``smoothed_loss`` is the mean of the last
        ``average_loss`` losses (a running mean until that many were seen)."""
        window = max(1, int(self.param.average_loss))
        if len(self.losses) < window:
            self.losses.append(loss)
            n = len(self.losses)
            self.smoothed_loss = (self.smoothed_loss * (n - 1) + loss) / n
        else:
            idx = (self.iter - self._start_iter) % window
            self.smoothed_loss += (loss - self.losses[idx]) / window
            self.losses[idx] = loss

    @torch.no_grad()
    def apply_update(self) -> float:
        """Caffe's ``ApplyUpdate``: clip, normalize, regularize, update, ``w -= diff``."""
        p = self.param
        self.rate = rate = self.learning_rate()
        grads = []
        for info in self.infos:  # Caffe works on the diffs in place; so do we
            if info.param.grad is None:
                info.param.grad = torch.zeros_like(info.param)
            grads.append(info.param.grad)
        if p.clip_gradients >= 0 and grads:
            norm = float(torch.stack([g.double().pow(2).sum() for g in grads]).sum().sqrt())
            if norm > p.clip_gradients:
                scale = float(float32(p.clip_gradients) / float32(norm))
                for g in grads:
                    g.mul_(scale)
        n = len(self.infos)
        slots = len(self.history) // n if n else 0
        for k, (info, g) in enumerate(zip(self.infos, grads)):
            w = info.param
            if p.iter_size > 1:
                g.mul_(float(float32(1) / float32(p.iter_size)))
            local_decay = float(float32(p.weight_decay) * float32(info.decay_mult))
            if local_decay:
                if p.regularization_type == "L2":
                    g.add_(w.detach(), alpha=local_decay)
                else:
                    g.add_(torch.sign(w.detach()), alpha=local_decay)
            local_rate = float(float32(rate) * float32(info.lr_mult))
            hist = [self.history[k + s * n] for s in range(slots)]
            diff = self._rule(g, hist, p, local_rate, self.iter + 1)
            if self.update_in_diff and diff is not g:
                diff = g.copy_(diff)  # Caffe leaves the update in the diff
            w.sub_(diff.to(w.dtype))
        self.iter += 1
        return rate

    # ---- testing ------------------------------------------------------------------------
    @torch.no_grad()
    def test(self, index: int = 0) -> dict[str, Any]:
        """Average each output of test net ``index`` over ``test_iter[index]`` batches."""
        net, feed = self.test_nets[index]
        n = int(self.param.test_iter[index]) if index < len(self.param.test_iter) else 1
        sums: "OrderedDict[str, torch.Tensor]" = OrderedDict()
        for b in range(n):
            blobs = net(**self._inputs_on_device(feed(b)))
            for name in net.outputs:
                t = blobs[name].detach().double()
                sums[name] = sums[name] + t if name in sums else t.clone()
        out: dict[str, Any] = {}
        for name, t in sums.items():
            mean = (t / n).cpu()
            out[name] = float(mean) if mean.numel() == 1 else mean.numpy()
        return out

    def test_all(self) -> list[dict[str, Any]]:
        results = [self.test(i) for i in range(len(self.test_nets))]
        if self.test_hook is not None:
            self.test_hook(self)
        return results

    def solve(self, resume: str | os.PathLike | None = None) -> None:
        """Caffe's ``Solve``: optionally restore, step to ``max_iter``, final snapshot/test."""
        if resume is not None:
            self.restore(resume)
        p = self.param
        self.step(max(0, int(p.max_iter) - self.iter))
        if p.snapshot_after_train and (not p.snapshot or self.iter % p.snapshot != 0):
            self.snapshot()
        if p.test_interval and self.iter % p.test_interval == 0:
            self.test_all()

    # ---- snapshots ------------------------------------------------------------------------
    def snapshot_paths(self, iteration: int | None = None) -> tuple[Path, Path]:
        it = self.iter if iteration is None else iteration
        stem = f"{self.snapshot_prefix}_iter_{it}"
        ext = ".caffemodel.h5" if self.param.snapshot_format == caffe_pb2.SolverParameter.HDF5 else ".caffemodel"
        return Path(stem + ext), Path(stem + STATE_SUFFIX)

    def snapshot(self) -> tuple[Path, Path]:
        """Write weights then solver state (both atomically); returns their paths."""
        weights_path, state_path = self.snapshot_paths()
        weights_path.parent.mkdir(parents=True, exist_ok=True)
        h5 = weights_path.suffix == ".h5"
        self.net.save_weights(str(weights_path), h5=h5)
        self.save_state(state_path, learned_net=weights_path.name)
        return weights_path, state_path

    def state_tensors(self) -> dict[str, torch.Tensor]:
        return {f"history.{i}": h.detach().cpu().contiguous() for i, h in enumerate(self.history)}

    def save_state(self, path: str | os.PathLike, learned_net: str = "") -> None:
        """Solver state as safetensors: history tensors + iter/current_step metadata."""
        meta = {"format": STATE_FORMAT, "type": self.param.type, "iter": str(self.iter),
                "current_step": str(self.current_step), "learned_net": learned_net,
                "num_params": str(len(self.infos)),
                "losses": json.dumps(self.losses), "smoothed_loss": repr(self.smoothed_loss)}
        with atomic_path(path) as tmp:
            save_file(self.state_tensors(), tmp, metadata=meta)

    def restore(self, path: str | os.PathLike, load_weights: bool = True) -> None:
        """Restore iter, current_step, history (and the weights named by the state)."""
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"solver state '{path}' not found")
        if path.name.endswith((".solverstate", ".solverstate.h5")):
            history, meta = read_solverstate(path)
        else:
            history, meta = _read_state(path)
        if len(history) != len(self.history):
            raise CaffeFormatError(f"{len(history)} history blobs, the {self.param.type} solver of "
                                   f"this net needs {len(self.history)}", path=path)
        for i, (h, mine) in enumerate(zip(history, self.history)):
            if h.numel() != mine.numel():
                raise CaffeFormatError(f"history blob {i} has {h.numel()} elements, param needs "
                                       f"{mine.numel()} (shape {tuple(mine.shape)})", path=path)
            mine.copy_(h.reshape(mine.shape).to(mine.device, mine.dtype))
        self.iter = int(meta.get("iter", 0))
        self.current_step = int(meta.get("current_step", 0))
        learned = meta.get("learned_net", "")
        if load_weights and learned:
            wpath = Path(learned)
            if not wpath.is_absolute():
                wpath = path.parent / wpath.name if (path.parent / wpath.name).is_file() else wpath
            self.net.load_weights(str(wpath))




def _read_state(path: Path) -> tuple[list[torch.Tensor], dict[str, str]]:
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = f.metadata() or {}
            if meta.get("format") != STATE_FORMAT:
                raise CaffeFormatError(f"not a caffe_import solver state (format {meta.get('format')!r})", path=path)
            n = len(list(f.keys()))
            history = []
            for i in range(n):
                key = f"history.{i}"
                if key not in f.keys():
                    raise CaffeFormatError(f"missing tensor '{key}'", path=path)
                history.append(f.get_tensor(key))
    except CaffeFormatError:
        raise
    except Exception as exc:  # safetensors raises its own error types for corrupt files
        raise CaffeFormatError(f"unreadable solver state: {exc}", path=path) from exc
    return history, meta


def read_solverstate(path: str | os.PathLike) -> tuple[list[torch.Tensor], dict[str, str]]:
    """Caffe's solver state: the binary ``.solverstate`` (SolverState protobuf: data only, no
    code) or ``.solverstate.h5`` (``iter``, ``current_step``, ``learned_net``,
    ``history/<i>``); returns the history blobs and ``iter``/``current_step``/``learned_net``."""
    path = Path(path)
    if path.name.endswith(".h5"):
        return _read_h5_solverstate(path)
    state = caffe_pb2.SolverState()
    try:
        state.ParseFromString(path.read_bytes())
    except Exception as exc:
        raise CaffeFormatError(f"not a SolverState protobuf: {exc}", path=path) from exc
    history = []
    for i, blob in enumerate(state.history):
        data = np.asarray(blob.double_data if len(blob.double_data) else blob.data, dtype=np.float32)
        history.append(torch.from_numpy(data.copy()))
    return history, {"iter": str(state.iter), "current_step": str(state.current_step),
                     "learned_net": state.learned_net}


def _read_h5_solverstate(path: Path) -> tuple[list[torch.Tensor], dict[str, str]]:
    import h5py  # lazy: h5py loads only for HDF5 solver states

    try:
        with h5py.File(path, "r") as f:
            learned = f["learned_net"][()] if "learned_net" in f else b""
            meta = {"iter": str(int(np.asarray(f["iter"]).reshape(-1)[0])),
                    "current_step": str(int(np.asarray(f["current_step"]).reshape(-1)[0])),
                    "learned_net": learned.decode() if isinstance(learned, bytes) else str(learned)}
            group = f["history"]
            history = [torch.from_numpy(np.asarray(group[str(i)], dtype=np.float32).copy())
                       for i in range(len(group))]
    except (OSError, KeyError, ValueError) as exc:
        raise CaffeFormatError(f"not a Caffe HDF5 solver state (iter, current_step, "
                               f"history/<i>): {exc}", path=path) from exc
    return history, meta


def write_solverstate(path: str | os.PathLike, *, iteration: int, current_step: int,
                      history: Sequence[torch.Tensor], learned_net: str) -> None:
    """Caffe's solver state, atomically: binary SolverState protobuf, or Caffe's HDF5 layout
    where ``path`` ends in ``.h5`` (``SnapshotSolverStateToHDF5``). ``learned_net`` is stored
    as given (Caffe stores the caffemodel's name as it wrote it)."""
    arrays = [h.detach().cpu().float().numpy() for h in history]
    with atomic_path(path) as tmp:
        if str(path).endswith(".h5"):
            _write_h5_solverstate(tmp, iteration, current_step, arrays, learned_net)
            return
        state = caffe_pb2.SolverState()
        state.iter, state.current_step, state.learned_net = iteration, current_step, learned_net
        for array in arrays:
            blob = state.history.add()
            blob.shape.dim.extend(array.shape)
            blob.data.extend(array.reshape(-1).tolist())
        Path(tmp).write_bytes(state.SerializeToString())


def _write_h5_solverstate(path: str | os.PathLike, iteration: int, current_step: int,
                          arrays: Sequence[np.ndarray], learned_net: str) -> None:
    import h5py  # lazy: h5py loads only for HDF5 solver states

    with h5py.File(path, "w") as f:
        f["iter"] = np.array([iteration], np.int32)  # H5LTmake_dataset_int: one element
        f["learned_net"] = np.bytes_(learned_net)
        f["current_step"] = np.array([current_step], np.int32)
        group = f.create_group("history")
        for i, array in enumerate(arrays):
            group[str(i)] = array
