"""``caffe-import run SCRIPT [ARGS...]``: run a pycaffe script with ``import caffe`` on PyTorch."""
from __future__ import annotations

import argparse


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
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..pycaffe.runner import run_script

    return run_script(args.script, args.args)
