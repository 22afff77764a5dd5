"""`caffe-import solver-parity CASE_DIR`: our solver steps against Caffe's recorded trajectory.

The case folder holds ``solver.prototxt``, ``train.prototxt``, ``init.caffemodel``,
``reference.h5`` (``/steps/<k>/inputs/<blob>``, ``/steps/<k>/params/<layer>/<i>``, attr
``loss``) and ``meta.json`` (``tolerance.rel_l2``). For each step the recorded inputs are fed
(to every ``iter_size`` pass), one solver step is taken, and every param after the update and
the step's loss are compared by relative L2 error.
"""
from __future__ import annotations

import argparse
import json
from typing import Any
from urllib.parse import unquote

import numpy as np

from ..errors import CaffeFormatError
from .options import device, naming, require_dir

DEFAULT_RTOL = 1e-4


def register(sub: Any) -> None:
    p = sub.add_parser("solver-parity", help="check our solver against a recorded Caffe trajectory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case_dir", help="folder in the solver_fcn32s_narrow layout")
    p.add_argument("--device", type=device, default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    p.add_argument("--rel-l2", type=float, default=None, help="override meta.json's tolerance")
    p.set_defaults(func=run)


def rel_l2(ours: np.ndarray, ref: np.ndarray) -> float:
    ours = np.asarray(ours, np.float64).reshape(-1)
    ref = np.asarray(ref, np.float64).reshape(-1)
    return float(np.linalg.norm(ours - ref) / max(np.linalg.norm(ref), np.finfo(np.float32).tiny))


def run(args: argparse.Namespace) -> int:
    import h5py
    import torch

    from ..io import read_solver
    from ..net import CaffeNet
    from ..solver import Solver

    case = require_dir(args.case_dir, "a solver-parity case (solver.prototxt, train.prototxt, "
                       "init.caffemodel, reference.h5)")
    for name in ("solver.prototxt", "train.prototxt", "init.caffemodel", "reference.h5"):
        if not (case / name).is_file():
            raise CaffeFormatError(f"missing {name} (expected the solver_fcn32s_narrow layout)", path=case)
    tol = args.rel_l2
    if tol is None:
        meta_path = case / "meta.json"
        try:
            meta = json.loads(meta_path.read_text()) if meta_path.is_file() else {}
            tol = float(meta.get("tolerance", {}).get("rel_l2", DEFAULT_RTOL))
        except (ValueError, TypeError, AttributeError) as exc:
            raise CaffeFormatError(f"expected JSON with tolerance.rel_l2 a number ({exc})",
                                   path=meta_path) from None

    param = read_solver(case / "solver.prototxt")
    device = torch.device(args.device)
    with naming(case / "train.prototxt"):
        net = CaffeNet(str(case / "train.prototxt"), weights=str(case / "init.caffemodel"), phase="train")
    net.to(device)
    solver = Solver(param, net, root=case, device=device)

    passed = total = 0
    try:
        ref = h5py.File(case / "reference.h5", "r")
    except OSError as exc:
        raise CaffeFormatError(f"not an HDF5 file: {exc}", path=case / "reference.h5") from exc
    with ref as f:
        if "steps" not in f:
            raise CaffeFormatError("no /steps group", path=case / "reference.h5")
        steps = sorted(f["steps"], key=lambda k: int(k) if k.isdigit() else -1)
        for key in steps:
            if not key.isdigit():
                raise CaffeFormatError(f"step name '{key}' is not a number", path=case / "reference.h5")
            group = f["steps"][key]
            inputs = {unquote(n): torch.from_numpy(np.asarray(group["inputs"][n][()], np.float32))
                      for n in group["inputs"]}
            loss = solver.step(1, inputs=inputs)
            worst, worst_name = 0.0, ""
            missing = []
            for layer in group["params"]:
                lname = unquote(layer)
                if lname not in net.params:
                    missing.append(lname)
                    continue
                for i in group["params"][layer]:
                    ours = net.params[lname][int(i)].detach().cpu().numpy()
                    err = rel_l2(ours, group["params"][layer][i][()])
                    if not err <= worst:
                        worst, worst_name = err, f"{lname}/{i}"
            ref_loss = float(group.attrs["loss"]) if "loss" in group.attrs else float("nan")
            loss_err = abs(loss - ref_loss) / max(abs(ref_loss), np.finfo(np.float32).tiny)
            ok = worst <= tol and loss_err <= tol and not missing
            total += 1
            passed += ok
            extra = f" missing {','.join(missing)}" if missing else ""
            print(f"step {key}: lr {solver.rate:.6g} loss {loss:.7g} (caffe {ref_loss:.7g}, rel {loss_err:.2e}) "
                  f"params worst rel_l2 {worst:.2e} ({worst_name}){extra} "
                  f"{'ok' if ok else 'FAIL'}", flush=True)
    print(f"{passed}/{total} steps within tolerance (rel_l2 <= {tol:g})")
    return 0 if total and passed == total else 1
