"""``caffe-import inspect FILE...``: what a Caffe file holds, judged by its content.

The project's own outputs are recognised too: the artefacts ``convert`` writes (.pt,
.safetensors), torch.export programs (.pt2) and ONNX models.

For each file: the detected format and version, then (nets and weights) every layer with
its type and bottoms -> tops, and (weights: caffemodels, artefacts, ONNX) the param blob shapes
and the total parameter count and bytes; a net prototxt holds no weights, so it has neither,
but its input and blob shapes are shown (its TEST net built without weights; ``--input
NAME=SHAPE`` where the file leaves a shape open), and its Python layers with what they need.
The stored activations ``dump`` writes (``reference.h5``) are listed array by array.
``--json`` prints the same as a JSON list, one object per file. Exit status 2 when a file
cannot be read or a net has a layer type caffe_import does not implement.
"""
from __future__ import annotations

import argparse
import json
import sys

from ..errors import CaffeFormatError
from ..inspect import inspect
from . import describe_os_error
from .options import (add_builtin_python_layers, add_input_shapes, add_schema_options,
    command_line_advice, python_layers_of, shapes_of)


def register(sub) -> None:
    parser = sub.add_parser("inspect", help="show what a Caffe file holds",
                            description=__doc__.split("\n\n")[0])
    parser.add_argument("files", nargs="+", metavar="FILE",
                        help="caffemodel, .caffemodel.h5, prototxt, binaryproto, solverstate, what "
                             "convert/export write (.pt, .safetensors, .pt2, .onnx), or a solver "
                             "snapshot's .solverstate.safetensors")
    parser.add_argument("--json", action="store_true", help="print JSON instead of text")
    add_schema_options(parser)
    add_input_shapes(parser)
    add_builtin_python_layers(parser)
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    """Each file in turn; one that cannot be read is an error line, and the others are still
    shown (exit 2 if any failed or a net has unimplemented layer types)."""
    infos, failed, status = [], 0, 0
    for p in args.files:
        try:
            info = inspect(p, schema=args.schema, input_shapes=shapes_of(args.input),
                           python_layers=python_layers_of(args))
        except (CaffeFormatError, OSError) as exc:
            if len(args.files) == 1:
                raise
            failed += 1
            sys.stdout.flush()
            what = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            print(f"caffe-import: error: {what}", file=sys.stderr)
            continue
        if info.as_dict().get("shapes_unknown"):
            info.as_dict()["shapes_unknown"] = command_line_advice(info.as_dict()["shapes_unknown"])
        infos.append(info.as_dict())
        if not args.json:
            print(info.text())
        status = max(status, _say_problems(info))
    if args.json:
        json.dump(infos, sys.stdout, indent=1)
        print()
    return 2 if failed else status


def _say_problems(info) -> int:
    """Stderr lines for a net's unimplemented layer types; 2 when the TEST net needs one."""
    unknown, later = info.unknown_layer_types(), info.train_only_unknown_types()
    sys.stdout.flush()
    if unknown:
        print(f"caffe-import: error: {info.file}: {len(unknown)} layer(s) of a type "
              f"caffe_import does not implement, so CaffeNet cannot build this net: "
              f"{', '.join(unknown)}", file=sys.stderr)
    if later:
        print(f"caffe-import: note: {info.file}: layers the TEST net leaves out have a "
              f"type caffe_import does not implement (building the net for another phase "
              f"or stage would fail): {', '.join(later)}", file=sys.stderr)
    return 2 if unknown else 0
