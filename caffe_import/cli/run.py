"""``caffe-import run SCRIPT [ARGS...]``: run a pycaffe script with ``import caffe`` on PyTorch.

The script's own failures are reported as ``python SCRIPT`` reports them, without this
command's frames: an exception prints the script's traceback and exits 1. A bad Caffe file
or a missing file the script opened (``CaffeFormatError``, ``OSError``) is the one-paragraph
error of every verb, led by the script line that asked for it (exit 2).
"""
from __future__ import annotations

import argparse
import os
import sys
import traceback
from types import TracebackType

from ..errors import CaffeFormatError, UsageError
from ..pycaffe.runner import run_script
from . import describe_os_error
from .options import add_schema_options


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
    rest = p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    rest.required = False  # argparse would otherwise name it among the missing arguments
    add_schema_options(p)
    p.set_defaults(func=run)


def _in_script(tb: TracebackType, script: str) -> bool:
    name = tb.tb_frame.f_code.co_filename  # the path as given (runpy), even after a chdir
    return name == script or os.path.abspath(name) == os.path.abspath(script)


def _script_frames(tb: TracebackType | None, script: str) -> TracebackType | None:
    """The traceback from the script's first frame on (None when the script never ran)."""
    while tb is not None and not _in_script(tb, script):
        tb = tb.tb_next
    return tb


def _script_line(tb: TracebackType, script: str) -> str:
    """``SCRIPT, line N`` of the deepest script frame in ``tb``."""
    line = tb.tb_lineno
    while tb is not None:
        if _in_script(tb, script):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{script}, line {line}"


def _run_script(args: argparse.Namespace) -> int:
    # lazy: pycaffe loads torch, which the other verbs' parsers should not wait for

    # --fork / --proto: the script's `caffe` is bound to that schema, for this run only
    return run_script(args.script, args.args, schema=args.schema)


def run(args: argparse.Namespace) -> int:
    try:
        return _run_script(args)
    except Exception as exc:  # noqa: BLE001 - the script's failure, reported as python would
        tb = _script_frames(exc.__traceback__, args.script)
        if tb is None or isinstance(exc, BrokenPipeError):  # the script did not start (not
            raise  # found, a folder), or its output went into `head`: as every verb
        if isinstance(exc, (CaffeFormatError, UsageError, OSError)):
            what = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            raise UsageError(f"{_script_line(tb, args.script)}: {what}") from None
        sys.stdout.flush()
        traceback.print_exception(type(exc), exc, tb, file=sys.stderr)
        return 1
