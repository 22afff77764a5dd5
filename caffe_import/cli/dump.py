"""``caffe-import dump NET WEIGHTS --input name=file.npy ... -o REF.h5``: store our activations."""
from __future__ import annotations

import argparse
from collections import OrderedDict
from pathlib import Path

import numpy as np

from ..errors import CaffeFormatError
from ..parity import dump
from .options import (add_builtin_python_layers, add_input_shapes, add_precision,
    add_schema_options, add_strict, device, naming, output_file, python_layers_of, require_net_file)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "dump", help="run a net and store its blobs in the stored-activation format",
        description="Run NET with WEIGHTS on the given inputs and write every blob (TRAIN: also "
                    "the gradients of one backward) to an HDF5 file that `caffe-import parity` "
                    "reads: store once, regression-test later.")
    p.add_argument("net", help="net prototxt")
    p.add_argument("weights", help="caffemodel or .caffemodel.h5")
    p.add_argument("-o", "--output", type=output_file, required=True, help="HDF5 file to write")
    p.add_argument("--phase", choices=("test", "train"), default="test",
                   help="net phase; train also stores gradients (default: test)")
    p.add_argument("--device", type=device, default="cpu", help="torch device to run on (default: cpu)")
    p.add_argument("--params", action="store_true", help="also store the param blobs")
    add_schema_options(p)
    add_precision(p)
    add_input_shapes(p, files=True)
    add_builtin_python_layers(p)
    add_strict(p)
    p.set_defaults(func=run)


def parse_inputs(specs: list[tuple[str, tuple[int, ...] | Path]],
                 seed: int = 0) -> "OrderedDict[str, np.ndarray]":
    """``--input`` pairs -> arrays: a ``.npy`` file read (``allow_pickle=False``: no code from a
    data file), a shape filled with seeded normal noise."""
    out: OrderedDict[str, np.ndarray] = OrderedDict()
    rng = np.random.default_rng(seed)
    for name, value in specs:
        if isinstance(value, tuple):
            out[name] = rng.standard_normal(value, dtype=np.float32)
            continue
        if not value.is_file():
            raise FileNotFoundError(f"--input {name}: no such file: {value}")
        try:
            out[name] = np.load(value, allow_pickle=False)
        except ValueError as exc:
            raise CaffeFormatError(f"not a .npy array of numbers ({exc})", path=value) from exc
    return out


def run(args: argparse.Namespace) -> int:
    parsed = require_net_file(args.net, schema=args.schema)
    inputs = parse_inputs(args.input)
    with naming(args.net, input_option=True):
        ref = dump(parsed, args.weights, inputs, args.output,
                   phase=args.phase, device=args.device, include_params=args.params,
                   precision=args.precision, python_layers=python_layers_of(args))
    extra = f", {sum(len(d) for d in ref.diffs.values()) + len(ref.blob_diffs)} gradients" \
        if ref.diffs or ref.blob_diffs else ""
    print(f"wrote {args.output}: {len(ref.blobs)} blobs{extra} ({args.phase.upper()})")
    return 0
