"""`fcn-repro` command line: one module per verb, each with ``register(subparsers)``.

A verb module defines ``register(sub)`` that adds its parser and sets ``func`` (a function
taking the parsed args and returning an exit code). Adding a verb touches only its own file
and the VERBS tuple below.
"""
from __future__ import annotations

import argparse
import importlib
import sys
from typing import Sequence

from caffe_import.errors import CaffeFormatError

VERBS = ("demo", "eval", "infer", "tables", "download", "netspec", "train")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fcn-repro",
                                     description="The FCN release (Long, Shelhamer, Darrell) as code.")
    sub = parser.add_subparsers(dest="verb", metavar="VERB")
    sub.required = True
    for verb in VERBS:
        try:
            module = importlib.import_module(f"{__name__}.{verb}")
        except ModuleNotFoundError as exc:  # a verb not written yet
            if exc.name == f"{__name__}.{verb}":
                continue
            raise
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return int(args.func(args) or 0)
    except CaffeFormatError as exc:
        print(f"fcn-repro: error: {exc}", file=sys.stderr)
        return 2
    except FileNotFoundError as exc:
        print(f"fcn-repro: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
