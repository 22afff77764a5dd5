"""`fcn-repro` command line: one module per verb, each with ``register(subparsers)``.

A verb module defines ``register(sub)`` that adds its parser and sets ``func`` (a function
taking the parsed args and returning an exit code). Adding a verb touches only its own file
and the VERBS tuple below. Parsing, exit codes and error reporting are
:func:`caffe_import.cli.run_cli`, shared with ``caffe-import``.
"""
from __future__ import annotations

import argparse
import sys
from typing import Sequence

from caffe_import.cli import build_verb_parser, run_cli
from fcn_repro import __version__
from fcn_repro.errors import FCNReproError

VERBS = ("demo", "eval", "infer", "tables", "download", "netspec", "train", "synthetic_data")
DESCRIPTION = "The FCN release (Long, Shelhamer, Darrell) as code."


def build_parser() -> argparse.ArgumentParser:
    return build_verb_parser("fcn-repro", DESCRIPTION, __name__, VERBS, __version__)


def main(argv: Sequence[str] | None = None) -> int:
    return run_cli("fcn-repro", DESCRIPTION, __name__, VERBS, argv, reported=(FCNReproError,),
                   version=__version__)


if __name__ == "__main__":
    sys.exit(main())
