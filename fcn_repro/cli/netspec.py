"""``fcn-repro netspec MODEL``: print or write a zoo model's net or solver as prototxt."""
from __future__ import annotations

import argparse

from caffe_import.cli.options import output_file_path
from caffe_import.io.atomic import atomic_write_text
from fcn_repro import zoo
from fcn_repro.zoo.render import render


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("netspec", help="a zoo model's train/val/deploy net or solver as prototxt",
                       description="Generate a model's prototxt from the zoo (the release's "
                                   "layer names, parameters and crop offsets).")
    p.add_argument("model", nargs="?", help="zoo model name, e.g. voc-fcn8s")
    p.add_argument("--net", choices=["train", "val", "deploy", "solver"], default="deploy",
                   help="which file (default: deploy)")
    p.add_argument("-o", "--output", type=output_file_path, help="write here (atomically) instead of stdout")
    p.add_argument("--list", action="store_true", help="list the zoo's models and exit")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.list or not args.model:
        for name in zoo.names():
            spec = zoo.get(name)
            print(f"{name:24s} {spec.dataset:15s} {spec.num_classes:5d}  {spec.description}")
        return 0
    text = render(args.model, args.net)
    if args.output:
        atomic_write_text(args.output, text)
    else:
        print(text, end="")
    return 0
