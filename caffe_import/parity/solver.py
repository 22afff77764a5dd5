"""Solver parity: our solver's steps against the SGD trajectory real Caffe recorded."""
from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote

import numpy as np
import torch

from ..errors import CaffeFormatError
from ..io import read_solver
from ..io.hdf5 import open_h5
from ..net import CaffeNet
from ..proto.schema import Schema, resolve_schema
from ..solver import Solver
from .compare import Tolerance, compare_arrays


SOLVER_CASE_FILES = ("solver.prototxt", "train.prototxt", "init.caffemodel", "reference.h5")
DEFAULT_SOLVER_REL_L2 = 1e-4


@dataclass
class SolverStep:
    """One solver step against Caffe's: the loss and the worst param after the update."""

    step: str
    rate: float
    loss: float
    caffe_loss: float
    loss_error: float
    worst_rel_l2: float
    worst_param: str
    missing: list[str]
    ok: bool

    def line(self) -> str:
        extra = f" missing {','.join(self.missing)}" if self.missing else ""
        return (f"step {self.step}: lr {self.rate:.6g} loss {self.loss:.7g} (caffe "
                f"{self.caffe_loss:.7g}, rel {self.loss_error:.2e}) params worst rel_l2 "
                f"{self.worst_rel_l2:.2e} ({self.worst_param}){extra} "
                f"{'ok' if self.ok else 'FAIL'}")


@dataclass
class SolverParityReport:
    steps: list[SolverStep]
    rel_l2: float

    @property
    def ok(self) -> bool:
        return bool(self.steps) and all(s.ok for s in self.steps)

    @property
    def summary(self) -> str:
        passed = sum(s.ok for s in self.steps)
        return f"{passed}/{len(self.steps)} steps within tolerance (rel_l2 <= {self.rel_l2:g})"


def _solver_case(case_dir: str | os.PathLike, rel_l2: float | None) -> tuple[Path, float]:
    """The case folder, checked for its files, and the tolerance (``rel_l2`` or meta.json's)."""
    case = Path(case_dir)
    for name in SOLVER_CASE_FILES:
        if not (case / name).is_file():
            raise CaffeFormatError(f"missing {name} (expected the solver_fcn32s_narrow layout)",
                                   path=case)
    if rel_l2 is not None:
        return case, float(rel_l2)
    meta_path = case / "meta.json"
    try:
        meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
        return case, float(meta.get("tolerance", {}).get("rel_l2", DEFAULT_SOLVER_REL_L2))
    except (ValueError, TypeError, AttributeError) as exc:
        raise CaffeFormatError(f"expected JSON with tolerance.rel_l2 a number ({exc})",
                               path=meta_path) from None


def _reference_steps(path: Path):
    """``(name, inputs, params group, Caffe's loss)`` per recorded step, in step order."""
    with open_h5(path) as f:
        if "steps" not in f:
            raise CaffeFormatError("no /steps group", path=path)
        for key in sorted(f["steps"], key=lambda k: int(k) if k.isdigit() else -1):
            if not key.isdigit():
                raise CaffeFormatError(f"step name '{key}' is not a number", path=path)
            group = f["steps"][key]
            inputs = {unquote(n): torch.from_numpy(np.asarray(group["inputs"][n][()], np.float32))
                      for n in group["inputs"]}
            loss = float(group.attrs["loss"]) if "loss" in group.attrs else float("nan")
            yield key, inputs, group["params"], loss


def _worst_param(net, params, tol: Tolerance) -> tuple[float, str, list[str]]:
    """The largest relative L2 error of the net's params against a step's stored ones (and
    its name), and the stored layers the net lacks."""
    worst, worst_name, missing = 0.0, "", []
    for layer in params:
        name = unquote(layer)
        if name not in net.params:
            missing.append(name)
            continue
        for i in params[layer]:
            row = compare_arrays("param", name, net.params[name][int(i)], params[layer][i][()],
                                 tol, int(i))
            if not row.rel_l2 <= worst:
                worst, worst_name = row.rel_l2, f"{name}/{i}"
    return worst, worst_name, missing


def check_solver_parity(case_dir: str | os.PathLike, device: str | torch.device = "cpu",
                        rel_l2: float | None = None, on_step=None, *, fork: str | None = None,
                        proto: str | os.PathLike | None = None,
                        schema: Schema | None = None) -> SolverParityReport:
    """Our solver against the SGD trajectory real Caffe recorded in ``case_dir``.

    The folder holds ``solver.prototxt``, ``train.prototxt``, ``init.caffemodel``,
    ``reference.h5`` (``/steps/<k>/inputs/<blob>``, ``/steps/<k>/params/<layer>/<i>``, attr
    ``loss``) and optionally ``meta.json`` (``tolerance.rel_l2``). For each step the recorded
    inputs are fed (to every ``iter_size`` pass), one solver step is taken, and every param
    after the update and the step's loss are compared by relative L2 error. ``on_step`` is
    called with each :class:`SolverStep` as it is done. ``fork``/``proto``: the Caffe fork
    schema the solver and net are read with.
    """
    case, tol = _solver_case(case_dir, rel_l2)
    schema = resolve_schema(schema, fork, proto)
    param = read_solver(case / "solver.prototxt", schema=schema)
    device = torch.device(device)
    net = CaffeNet(str(case / "train.prototxt"), weights=str(case / "init.caffemodel"),
                   phase="train", schema=schema).to(device)
    solver = Solver(param, net, root=case, device=device)
    bounds = Tolerance(rel_l2=tol, max_abs=math.inf)
    steps = []
    for key, inputs, params, caffe_loss in _reference_steps(case / "reference.h5"):
        loss = solver.step(1, inputs=inputs)
        worst, worst_name, missing = _worst_param(net, params, bounds)
        loss_error = abs(loss - caffe_loss) / max(abs(caffe_loss), np.finfo(np.float32).tiny)
        ok = worst <= tol and loss_error <= tol and not missing
        steps.append(SolverStep(key, solver.rate, loss, caffe_loss, loss_error, worst,
                                worst_name, missing, ok))
        if on_step is not None:
            on_step(steps[-1])
    return SolverParityReport(steps, tol)
