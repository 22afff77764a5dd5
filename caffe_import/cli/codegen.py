"""``caffe-import codegen NET [WEIGHTS] -o DIR``: the net as plain PyTorch source."""
from __future__ import annotations

import argparse

from ..codegen import write_module
from ..codegen.generate import check_class_name
from ..net import CaffeNet
from .options import (add_builtin_python_layers, add_input_shapes, add_schema_options,
    naming, output_dir, python_layers_of, require_known_inputs, require_net_file,
    require_weights_file, shapes_of)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "codegen", help="write a net as plain PyTorch source (model.py, model.safetensors)",
        description="Build NET (with WEIGHTS when given) and write DIR/model.py: one "
                    "torch.nn.Module that imports only torch, one attribute per Caffe layer, "
                    "Caffe's own numerics as small functions where torch.nn differs; with "
                    "WEIGHTS also DIR/model.safetensors, which its load_state_dict takes "
                    "strictly. The module is first run against the net (every output blob; a "
                    "TRAIN net's gradients too) and nothing is written if it differs. Example::\n\n"
                    "    caffe-import codegen fcn8s.prototxt fcn8s.caffemodel -o fcn8s_torch")
    p.add_argument("net", help="net prototxt")
    p.add_argument("weights", nargs="?", default=None,
                   help="caffemodel or .caffemodel.h5 (optional: without it model.py only)")
    p.add_argument("-o", "--output", type=output_dir, required=True, metavar="DIR",
                   help="folder to write model.py (and model.safetensors) into")
    p.add_argument("--class-name", default="Net", metavar="NAME",
                   help="name of the generated nn.Module class")
    p.add_argument("--phase", choices=("test", "train"), default="test",
                   help="net phase: which layers Caffe's include/exclude rules keep")
    add_schema_options(p)
    add_input_shapes(p)
    add_builtin_python_layers(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    check_class_name(args.class_name)  # before the net is built
    parsed = require_net_file(args.net, schema=args.schema)
    if args.weights is not None:
        require_weights_file(args.weights)
    shapes = shapes_of(args.input)
    with naming(args.net, input_option=True):
        net = CaffeNet(parsed, args.weights, phase=args.phase, input_shapes=shapes,
                       python_layers=python_layers_of(args))
    require_known_inputs(net, args.input)
    with naming(args.net):
        write_module(net, args.output, class_name=args.class_name, net_path=args.net,
                     weights_path=args.weights, inputs=shapes,
                     say=lambda line: print(line, flush=True))
    return 0
