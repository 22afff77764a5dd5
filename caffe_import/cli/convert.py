"""``caffe-import convert NET WEIGHTS -o OUT``: the net in the format OUT's name ends in."""
from __future__ import annotations

import argparse

from ..convert import output_format, write_as
from ..net import CaffeNet
from .options import (add_builtin_python_layers, add_input_shapes, add_precision,
    add_schema_options, add_strict, naming, output_file, python_layers_of, require_known_inputs,
    require_net_file, shapes_of)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="write a net and its weights in the format the output's name ends in",
        description="Build NET with WEIGHTS and write it in the format OUT's name ends in: "
                    ".pt or .safetensors (one file holding the net definition, its state - "
                    "phase, stages, level - and every param blob; .pt loads with "
                    "torch.load(weights_only=True), both with caffe_import.load; no pickled "
                    "code), .caffemodel or .caffemodel.h5 (Caffe's own weight files), .onnx or "
                    ".pt2 (an export of the deploy net, checked against the eager net). Any "
                    "other name is refused. --precision fast is recorded in .pt/.safetensors "
                    "(weights stay float32) and `load` builds the net in it.")
    p.add_argument("net", help="net prototxt")
    p.add_argument("weights", help="caffemodel or .caffemodel.h5")
    p.add_argument("-o", "--output", type=output_file, required=True,
                   help="file to write: .pt, .safetensors, .caffemodel, .caffemodel.h5, .onnx or .pt2")
    p.add_argument("--phase", choices=("test", "train"), default="test",
                   help="net phase: which layers Caffe's include/exclude rules keep")
    p.add_argument("--stage", action="append", default=[], help="a net stage (repeatable)")
    p.add_argument("--level", type=int, default=0, help="net level, for include/exclude min_level and max_level rules")
    add_schema_options(p)
    add_precision(p)
    add_input_shapes(p)
    add_builtin_python_layers(p)
    add_strict(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    output_format(args.output)  # refuse a name that says no format before building the net
    parsed = require_net_file(args.net, schema=args.schema)
    with naming(args.net, input_option=True):
        net = CaffeNet(parsed, args.weights, phase=args.phase, stages=tuple(args.stage),
                       level=args.level, precision=args.precision,
                       input_shapes=shapes_of(args.input), python_layers=python_layers_of(args))
    require_known_inputs(net, args.input)
    with naming(args.net):  # a layer the output format cannot hold names the net's file
        print(write_as(net, args.output, say=lambda line: print(line, flush=True)))
    return 0
