"""`caffe-import solver-parity CASE_DIR`: our solver steps against Caffe's recorded trajectory.

The case folder holds ``solver.prototxt``, ``train.prototxt``, ``init.caffemodel``,
``reference.h5`` (``/steps/<k>/inputs/<blob>``, ``/steps/<k>/params/<layer>/<i>``, attr
``loss``) and ``meta.json`` (``tolerance.rel_l2``). For each step the recorded inputs are fed
(to every ``iter_size`` pass), one solver step is taken, and every param after the update and
the step's loss are compared by relative L2 error.
"""
from __future__ import annotations

import argparse
from typing import Any

from ..parity import check_solver_parity
from .options import add_schema_options, device, naming, require_dir


def register(sub: Any) -> None:
    p = sub.add_parser("solver-parity", help="check our solver against a recorded Caffe trajectory",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("case_dir", help="folder in the solver_fcn32s_narrow layout")
    p.add_argument("--device", type=device, default="cpu", help="torch device (cpu, cuda, cuda:1, ...)")
    p.add_argument("--rel-l2", type=float, default=None, help="override meta.json's tolerance")
    add_schema_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    case = require_dir(args.case_dir, "a solver-parity case (solver.prototxt, train.prototxt, "
                       "init.caffemodel, reference.h5)")
    with naming(case / "train.prototxt"):  # net errors name the layer; this names the file
        report = check_solver_parity(case, args.device, args.rel_l2,
                                     on_step=lambda step: print(step.line(), flush=True),
                                     schema=args.schema)
    print(report.summary)
    return 0 if report.ok else 1
