"""``caffe-import parity NET WEIGHTS REFERENCE.h5``: compare our run with stored activations."""
from __future__ import annotations

import argparse
import json

from ..parity import check_parity
from .options import (add_builtin_python_layers, add_input_shapes, add_precision,
    add_schema_options, add_strict, device, naming, python_layers_of, require_net_file, shapes_of)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "parity", help="compare a net's blobs (and gradients) with stored Caffe activations",
        description="Run NET with WEIGHTS on the inputs stored in REFERENCE.h5 and compare every "
                    "stored blob (and, for TRAIN references, every gradient). Exit status 0 only "
                    "when all are within tolerance (default: with --precision fast rel L2 2e-2 and "
                    "max abs / max ref 5e-2; else meta.json beside the reference, else rel L2 "
                    "1e-5 and max abs / max ref 1e-4; the table says which).")
    p.add_argument("net", help="net prototxt")
    p.add_argument("weights", help="caffemodel or .caffemodel.h5")
    p.add_argument("reference", help="stored activations (reference.h5)")
    p.add_argument("--device", type=device, default="cpu", help="torch device to run on (default: cpu)")
    p.add_argument("--rel-l2", type=float, default=None, help="bound on ||ours-ref|| / ||ref||")
    p.add_argument("--max-abs", type=float, default=None,
                   help="bound on max|ours-ref| / max|ref|")
    add_precision(p)
    p.add_argument("--json", action="store_true", help="print the report as JSON (rows, tolerance, summary)")
    add_schema_options(p)
    add_input_shapes(p)
    add_builtin_python_layers(p)
    add_strict(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    parsed = require_net_file(args.net, schema=args.schema)
    with naming(args.net, input_option=True):
        report = check_parity(parsed, args.weights, args.reference, device=args.device,
                              rel_l2=args.rel_l2, max_abs=args.max_abs,
                              precision=args.precision, input_shapes=shapes_of(args.input),
                              python_layers=python_layers_of(args))
    if args.json:
        print(json.dumps(report.as_dict(), indent=1))  # pure JSON: "summary" is inside
    else:
        print(report.table())
    return 0 if report.ok else 1
