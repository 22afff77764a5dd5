"""``fcn-repro synthetic-data KIND ROOT``: small random datasets in the release's layouts."""
from __future__ import annotations

import argparse
from pathlib import Path

from caffe_import.cli.options import output_dir
from caffe_import.errors import UsageError
from fcn_repro.data import dataset_names
from fcn_repro.data.synthetic import make_dataset


def _count(text: str) -> int:
    n = int(text)
    if n < 1:
        raise argparse.ArgumentTypeError(f"{text}: expected at least 1 item")
    return n


def register(sub: argparse._SubParsersAction) -> None:
    kinds = dataset_names()
    p = sub.add_parser("synthetic-data", help="write small random datasets in the release's layouts",
                       description="Write N random images with labels in a dataset's own on-disk "
                                   "layout and label encoding (void pixels included), with its split "
                                   "lists, to try eval and train offline or to test against. ROOT "
                                   "must be a new or empty folder: nothing in a real dataset is "
                                   "overwritten.\n\n"
                                   "    fcn-repro synthetic-data voc /tmp/voc --n 4\n"
                                   "    fcn-repro eval --model voc-fcn8s --weights W --root /tmp/voc")
    p.add_argument("kind", choices=kinds + ("all",), metavar="KIND",
                   help=f"dataset layout: {', '.join(kinds)}, or all (one sub-folder of ROOT each)")
    p.add_argument("root", type=output_dir, metavar="ROOT", help="output folder, new or empty")
    p.add_argument("--n", type=_count, default=3, help="images per dataset")
    p.add_argument("--seed", type=int, default=0, help="random seed (same seed, same files)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    kinds = dataset_names() if args.kind == "all" else (args.kind,)
    roots = {kind: args.root / kind if args.kind == "all" else args.root for kind in kinds}
    for root in roots.values():
        _require_empty(root)
    for kind, root in roots.items():
        print(f"{kind}: {make_dataset(kind, root, args.n, args.seed)}")
    return 0


def _require_empty(root: Path) -> None:
    if root.is_dir() and any(root.iterdir()):
        raise UsageError(f"{root}: folder is not empty; synthetic data goes into a new or empty "
                         "folder, so that no file of a real dataset is overwritten")
