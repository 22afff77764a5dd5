"""``caffe-import run SCRIPT [ARGS...]``: run a pycaffe script with ``import caffe`` on PyTorch
(``caffe-import run -m MODULE [ARGS...]``: a module, as ``python -m`` runs it).

The script's own failures are reported as ``python SCRIPT`` reports them, without this
command's frames or caffe_import's: an exception prints the script's traceback and exits 1;
a syntax error prints what Python prints for it (and, where the script is Python 2, one line
saying to port it with 2to3). A bad Caffe file or a missing file the script opened
(``CaffeFormatError``, ``OSError``) is the one-paragraph error of every verb, led by the
script line that asked for it (exit 2).
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import traceback
from types import TracebackType

from ..errors import CaffeFormatError, UsageError
from ..pycaffe.runner import run_module, run_script
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
    p.add_argument("script", nargs="?", help="the Python script to run")
    rest = p.add_argument("args", nargs=argparse.REMAINDER, help="arguments passed to the script")
    rest.required = False  # argparse would otherwise name it among the missing arguments
    p.add_argument("-m", dest="module", nargs=argparse.REMAINDER, metavar="MODULE [ARGS]",
                   help="run a library module as a script, as python -m does (e.g. "
                        "`-m unittest discover -s DIR` for pycaffe's own unittest files)")
    add_schema_options(p)
    p.set_defaults(func=run)


def _same_file(name: str, script: str) -> bool:
    return name == script or os.path.abspath(name) == os.path.abspath(script)


def _in_script(tb: TracebackType, script: str) -> bool:
    # the path as given (runpy), even after a chdir
    return _same_file(tb.tb_frame.f_code.co_filename, script)


def _script_frames(tb: TracebackType | None, script: str) -> TracebackType | None:
    """The traceback from the script's first frame on (None when the script never ran)."""
    while tb is not None and not _in_script(tb, script):
        tb = tb.tb_next
    return tb


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # caffe_import/
# what Python 3 says of Python 2 code, and Python 2 lines it may only call "invalid syntax"
_PY2_MESSAGES = ("Missing parentheses in call to", "multiple exception types must be "
                 "parenthesized", "leading zeros in decimal integer literals")
_PY2_LINE = re.compile(r"^\s*(print\s+[^\s(=]|exec\s+['\"]|raise\s+[\w.]+\s*,)|"
                       r"except\s+[\w.]+\s*,\s*\w+\s*:|\b\d+L\b|\bur['\"]|`")


def _without_ours(tb: TracebackType | None) -> TracebackType | None:
    """``tb`` without the frames of caffe_import's own code (the script's API calls end at
    the script's line, as a C++ Caffe's do)."""
    kept = []
    while tb is not None:
        if not os.path.abspath(tb.tb_frame.f_code.co_filename).startswith(_PACKAGE + os.sep):
            kept.append(tb)
        tb = tb.tb_next
    for frame, after in zip(kept, kept[1:] + [None]):
        frame.tb_next = after
    return kept[0] if kept else None


def _python2_hint(exc: SyntaxError) -> str | None:
    """One line saying to port a Python 2 file, when ``exc`` looks like Python 2's syntax."""
    if not any(m in (exc.msg or "") for m in _PY2_MESSAGES) and \
            not _PY2_LINE.search(exc.text or ""):
        return None
    name = exc.filename or "the script"
    return (f"caffe-import: note: {name} is Python 2 code (as Caffe's own examples are); "
            f"port it to Python 3 first: python3 -m lib2to3 -w {name} (Python <= 3.12) or "
            f"pip install fissix (see docs/pycaffe.md)")


def _report(exc: Exception, tb: TracebackType | None) -> int:
    """What ``python SCRIPT`` prints for the script's exception (from its first frame on,
    none of ours; a syntax error in the script itself has no frames), and for Python 2 syntax
    one line saying to port it; exit status 1."""
    sys.stdout.flush()
    traceback.print_exception(type(exc), exc, _without_ours(tb), file=sys.stderr)
    hint = _python2_hint(exc) if isinstance(exc, SyntaxError) else None
    if hint:
        print(hint, file=sys.stderr)
    return 1


def _script_line(tb: TracebackType, script: str) -> str:
    """``SCRIPT, line N`` of the deepest script frame in ``tb``."""
    line = tb.tb_lineno
    while tb is not None:
        if _in_script(tb, script):
            line = tb.tb_lineno
        tb = tb.tb_next
    return f"{script}, line {line}"


def _run_module(args: argparse.Namespace) -> int:
    """``-m MODULE ARGS``: as ``python -m``; a failure prints its traceback (none of ours)."""
    try:
        return run_module(args.module[0], args.module[1:], schema=args.schema)
    except UsageError:
        raise  # no such module: one line, exit 2
    except Exception as exc:  # noqa: BLE001 - the module's failure, reported as python would
        if isinstance(exc, BrokenPipeError):
            raise
        return _report(exc, exc.__traceback__)


def run(args: argparse.Namespace) -> int:
    if args.module:
        if args.script is not None:  # only when options came between: `run --fork x s.py -m`
            raise UsageError("run: give a script or -m MODULE, not both")
        return _run_module(args)
    if args.script is None:
        raise UsageError("run SCRIPT [ARGS...] or run -m MODULE [ARGS...]: "
                         "the following arguments are required: script")
    try:  # --fork / --proto: the script's `caffe` is bound to that schema, for this run only
        return run_script(args.script, args.args, schema=args.schema)
    except Exception as exc:  # noqa: BLE001 - the script's failure, reported as python would
        tb = _script_frames(exc.__traceback__, args.script)
        if tb is None and isinstance(exc, SyntaxError) and exc.filename is not None \
                and _same_file(exc.filename, args.script):
            return _report(exc, None)  # the script did not compile
        if tb is None or isinstance(exc, BrokenPipeError):  # the script did not start (not
            raise  # found, a folder), or its output went into `head`: as every verb
        if isinstance(exc, (CaffeFormatError, UsageError, OSError)):
            what = describe_os_error(exc) if isinstance(exc, OSError) else str(exc)
            raise UsageError(f"{_script_line(tb, args.script)}: {what}") from None
        return _report(exc, tb)
