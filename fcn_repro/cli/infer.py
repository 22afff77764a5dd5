"""``fcn-repro infer``: segment image files (label PNG, overlay, optional scores)."""
from __future__ import annotations

import argparse
from pathlib import Path

from caffe_import.cli.options import (device, naming, output_dir, require_net_file,
                                      require_weights_file)


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="segment images: label PNG, colour overlay, optional scores",
                       description="Segment images with a model's deploy net and the release's "
                                   "preprocessing; writes <name>.png (VOC palette), "
                                   "<name>_overlay.png and with --save-scores <name>_scores.npy.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a zoo model name, e.g. voc-fcn8s")
    which.add_argument("--net", type=Path, help="a deploy prototxt (VOC mean unless --mean)")
    p.add_argument("--weights", type=Path, required=True)
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE")
    p.add_argument("-o", "--output", type=output_dir, required=True, metavar="DIR")
    p.add_argument("--device", type=device, default="cpu")
    p.add_argument("--save-scores", action="store_true", help="also write the class scores (.npy)")
    p.add_argument("--mean", type=float, nargs=3, metavar=("B", "G", "R"), help="BGR mean to subtract")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from fcn_repro.infer import infer
    require_weights_file(args.weights)
    if args.net is not None:
        require_net_file(args.net, "deploy net prototxt")
    with naming(args.net):
        written = infer(args.images, args.output, model=args.model, net=args.net, weights=args.weights,
                        device=args.device, save_scores=args.save_scores, mean_bgr=args.mean)
    for path in written:
        print(path)
    return 0
