"""``fcn-repro demo``: convert the bundled narrow FCN-8s, check parity with Caffe, segment an image."""
from __future__ import annotations

import argparse
from pathlib import Path

from caffe_import.cli.options import device, output_dir
from fcn_repro.demo import run_demo


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("demo", help="offline demo: bundled narrow FCN-8s, parity with Caffe, a segmentation",
                       description="Works offline right after install. The bundled net has random "
                                   "weights: its segmentation is meaningless; the parity check is the point.")
    p.add_argument("-o", "--output", type=output_dir, default=Path("fcn_demo_out"), metavar="DIR",
                   help="output folder (default ./fcn_demo_out)")
    p.add_argument("--device", type=device, default="cpu", help="torch device (default cpu)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    result = run_demo(args.output, args.device)
    return 0 if result.parity_ok else 1
