"""``caffe-import export NET WEIGHTS --onnx out.onnx | --torch-export out.pt2``."""
from __future__ import annotations

import argparse

from .. import export as ex
from ..errors import UsageError
from ..net import CaffeNet
from .options import (add_builtin_python_layers, add_input_shapes, add_precision,
    add_schema_options, add_strict, naming, output_file, python_layers_of, require_net_file,
    shapes_of)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "export", help="export a deploy net as ONNX or a torch.export program (.pt2)",
        description="Build the deploy (TEST phase) NET with WEIGHTS, trace it for the input "
                    "shapes (default: the shapes its Input layers declare) with batch, height "
                    "and width left dynamic where the net allows it, write ONNX and/or a "
                    "torch.export program, and check that the export reproduces the eager net "
                    "(at the traced size and at a second one).")
    p.add_argument("net", help="net prototxt (deploy)")
    p.add_argument("weights", help="caffemodel or .caffemodel.h5")
    p.add_argument("--onnx", type=output_file, metavar="OUT.onnx", help="write ONNX (needs onnxscript)")
    p.add_argument("--torch-export", type=output_file, metavar="OUT.pt2", help="write a torch.export program")
    add_input_shapes(p, help="input blob shape to trace with (repeatable)")
    p.add_argument("--output", action="append", default=[], metavar="BLOB",
                   help="output blob (repeatable; default: the net's outputs)")
    p.add_argument("--opset", type=int, default=None, help="ONNX opset version")
    p.add_argument("--static", action="store_true",
                   help="fix every input size to the traced one (default: batch, height and "
                        "width dynamic where the net allows it)")
    add_precision(p)
    p.add_argument("--no-verify", action="store_true",
                   help="skip rerunning the export against the eager net")
    add_schema_options(p)
    add_builtin_python_layers(p)
    add_strict(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if not args.onnx and not args.torch_export:
        raise UsageError("nothing to do: give --onnx OUT.onnx and/or "
                               "--torch-export OUT.pt2")
    parsed = require_net_file(args.net, "deploy net prototxt", schema=args.schema)
    shapes = shapes_of(args.input)  # the shapes to trace with
    with naming(args.net):
        net = CaffeNet(parsed, args.weights, phase="test", precision=args.precision,
                       compile=False, python_layers=python_layers_of(args))
    outputs = args.output or None
    if args.onnx:
        ex.check_onnx_precision(net)  # before anything is written
    for path, kind in ((args.torch_export, ".pt2"), (args.onnx, ".onnx")):
        if path:
            with naming(args.net):  # a layer refusing the traced shapes names the net's file
                print(ex.write_export(net, path, shapes, outputs, opset=args.opset,
                                      verify=not args.no_verify, kind=kind,
                                      dynamic=not args.static), flush=True)
    return 0
