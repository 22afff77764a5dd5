"""`caffe-import` command line, and the dispatcher both of the project's commands share.

A verb module defines ``register(sub)`` that adds its parser and sets ``func`` (a function
taking the parsed args and returning an exit code). Adding a verb touches only its own file
and the VERBS tuple below. ``fcn-repro`` (``fcn_repro.cli``) runs through the same
:func:`run_cli`, so both commands report bad input the same way:

=====  =====================================================================================
exit   meaning
=====  =====================================================================================
0      done
1      a check ran and failed (parity, solver parity, demo parity, a download)
2      bad input: usage, a missing or malformed file, an unknown model / layer / device,
       or the operating system refused (permission denied, disk full, a file in the way)
130    interrupted (Ctrl-C)
=====  =====================================================================================

``--version`` (both commands) prints the package's version with torch's and Python's.

Errors are one paragraph on stderr, ``<prog>: error: <file / layer / line>: <what was
expected>``, never a Python traceback. An exception of any other kind is a bug of ours and
keeps its traceback.
"""
from __future__ import annotations

import argparse
import importlib
import importlib.metadata
import os
import sys
from typing import Sequence

from ..errors import CaffeFormatError, UsageError
from ..threads import configure_threads
from ..version import __version__
from .formatting import HelpFormatter
from .options import verb_scope

VERBS = ("inspect", "parity", "dump", "convert", "export", "codegen", "solver_parity", "run",
         "train", "score", "timing", "convert_imageset", "compute_image_mean")
DESCRIPTION = "Caffe files and nets in PyTorch, without Caffe."

EXIT_OK, EXIT_FAILED, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


def version_line(prog: str, version: str) -> str:
    """``<prog> <version> (torch <version>, Python <version>)``, what ``--version`` prints;
    torch's version read from its installed metadata, without importing it."""
    try:
        torch = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch = "not installed"
    python = ".".join(map(str, sys.version_info[:3]))
    return f"{prog} {version} (torch {torch}, Python {python})"


def build_verb_parser(prog: str, description: str, package: str,
                      verbs: Sequence[str], version: str = __version__) -> argparse.ArgumentParser:
    """A parser with one sub-command per module ``<package>.<verb>``, and ``--version``."""
    parser = argparse.ArgumentParser(prog=prog, description=description, formatter_class=HelpFormatter)
    parser.add_argument("--version", action="version", version=version_line(prog, version),
                        help="print the version (and torch's) and exit")
    sub = parser.add_subparsers(dest="verb", metavar="VERB", help=f"one of these ({prog} VERB --help for its options):")
    sub.required = True
    for verb in verbs:
        importlib.import_module(f"{package}.{verb}").register(sub)
    for verb_parser in sub.choices.values():
        verb_parser.formatter_class = HelpFormatter  # plain text, defaults shown (see formatting)
    return parser


def describe_os_error(exc: OSError) -> str:
    """``<file>: <reason>`` for an OSError, with a hint where the reason alone is cryptic."""
    reason = exc.strerror or str(exc) or type(exc).__name__
    names = [os.fspath(n) for n in (exc.filename, exc.filename2) if n is not None]
    where = " -> ".join(str(n) for n in names)
    hint = ""
    if isinstance(exc, (FileExistsError, NotADirectoryError)):
        hint = " (a file is where a folder is expected)"
    elif isinstance(exc, IsADirectoryError):
        hint = " (a folder is where a file is expected)"
    elif isinstance(exc, PermissionError):
        hint = " (check the file's and its folder's permissions)"
    elif getattr(exc, "errno", None) == 28:  # ENOSPC
        hint = " (free some space or write elsewhere)"
    return f"{where}: {reason}{hint}" if where else f"{reason}{hint}"


def _is_out_of_memory(exc: BaseException) -> bool:
    torch = sys.modules.get("torch")
    oom = getattr(getattr(torch, "cuda", None), "OutOfMemoryError", None)
    return isinstance(exc, MemoryError) or (oom is not None and isinstance(exc, oom))


def _quiet_broken_pipe() -> None:
    """Output piped into ``head``: stop quietly, as command-line tools do."""
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError, AttributeError):
        pass


def run_cli(prog: str, description: str, package: str, verbs: Sequence[str],
            argv: Sequence[str] | None = None,
            reported: tuple[type[Exception], ...] = (), version: str = __version__) -> int:
    """Parse ``argv``, run the verb, and turn every expected failure into an exit code.

    Returns the exit code instead of raising ``SystemExit`` (argparse's usage errors give 2,
    ``--help`` 0), so ``main([...])`` is testable and ``sys.exit(main())`` is the script.
    ``reported``: a caller's own error types, printed on one line (exit 2) like ours;
    ``version``: what ``--version`` says (with torch's).
    First, before any verb loads torch, the OpenMP threads get defaults that stay fast on a
    shared machine (:func:`caffe_import.threads.configure_threads`).
    """
    configure_threads()
    parser = build_verb_parser(prog, description, package, verbs, version)

    def fail(message: str, code: int = EXIT_USAGE) -> int:
        sys.stdout.flush()
        print(f"{prog}: error: {message}", file=sys.stderr)
        return code

    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a usage error argparse has already printed
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    try:
        with verb_scope(args, prog):
            return int(args.func(args) or 0)
    except KeyboardInterrupt:
        return fail("interrupted", EXIT_INTERRUPTED)
    except (CaffeFormatError, UsageError, *reported) as exc:
        return fail(str(exc))
    except BrokenPipeError:
        _quiet_broken_pipe()
        return EXIT_FAILED
    except OSError as exc:  # missing file, permission denied, disk full, a file in the way
        return fail(describe_os_error(exc))
    except Exception as exc:  # noqa: BLE001 - only out-of-memory is expected; others re-raise
        if _is_out_of_memory(exc):
            return fail(f"out of memory ({str(exc).splitlines()[0] if str(exc) else exc!r}); "
                        "try a smaller input or another device")
        raise


def build_parser() -> argparse.ArgumentParser:
    return build_verb_parser("caffe-import", DESCRIPTION, __name__, VERBS)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("caffe-import", DESCRIPTION, __name__, VERBS, argv)


if __name__ == "__main__":
    sys.exit(main())
