"""``caffe-import run SCRIPT [ARGS...]``: run a pycaffe script with ``import caffe`` on PyTorch."""
from __future__ import annotations

import argparse

from .options import add_schema_options, schema_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "run", help="run a pycaffe script with `import caffe` resolved to this library",
        description="Run SCRIPT as `python SCRIPT ARGS...` would (as __main__, sys.argv, "
                    "sys.path[0] = its folder, current directory unchanged), with `import "
                    "caffe` (and caffe.proto.caffe_pb2, caffe.io, caffe.net_spec, ...) "
                    "answered by caffe_import's pycaffe API. Python layers the script's nets "
                    "name are imported from sys.path, as Caffe does: run only scripts and "
                    "models you trust, as you would under Caffe. See docs/pycaffe.md.")
    p.add_argument("script", help="the Python script to run")
    p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    add_schema_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..proto.schema import using_schema
    from ..pycaffe.runner import run_script

    schema = schema_args(args)
    if schema["fork"] is None and schema["proto"] is None:
        return run_script(args.script, args.args)
    with using_schema(**schema):  # the script's nets are read with this Caffe fork's schema
        return run_script(args.script, args.args)
