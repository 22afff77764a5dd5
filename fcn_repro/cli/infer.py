"""``fcn-repro infer``: segment image files (label PNG, overlay, optional scores)."""
from __future__ import annotations

import argparse
from pathlib import Path

from caffe_import.cli.options import add_strict
from caffe_import.cli.options import (add_precision, add_schema_options, device, naming, output_dir,
    require_net_file, require_weights_file)
from fcn_repro.infer import infer


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("infer", help="segment images: label PNG, colour overlay, optional scores",
                       description="Segment images with a model's deploy net and the release's "
                                   "preprocessing; writes NAME.png (VOC palette), NAME_overlay.png "
                                   "and with --save-scores NAME_scores.npy per image (NAME_HEAD... "
                                   "for nets with several score blobs).\n\n"
                                   "NAME is the image's file name without its extension when "
                                   "those all differ, wherever the images are (/x/a.jpg y/b.jpg "
                                   "-> DIR/a.png, DIR/b.png). When two images share a name, all "
                                   "keep their folders below the deepest folder they share "
                                   "(d1/a.jpg d2/a.jpg -> DIR/d1/a.png, DIR/d2/a.png), so no "
                                   "result overwrites another. Two inputs "
                                   "that would still write one file (a.jpg beside a.png) are "
                                   "refused before anything is computed.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a zoo model name, e.g. voc-fcn8s (its deploy net and mean)")
    which.add_argument("--net", type=Path, help="a deploy prototxt (VOC mean unless --mean)")
    p.add_argument("--weights", type=Path, required=True, help="caffemodel or .caffemodel.h5")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                   help="image files (JPEG, PNG, ...: anything Pillow reads)")
    p.add_argument("-o", "--output", type=output_dir, required=True, metavar="DIR",
                   help="folder for the outputs (created if missing)")
    p.add_argument("--device", type=device, default="cpu", help="torch device, e.g. cuda, cuda:1")
    p.add_argument("--save-scores", action="store_true", help="also write the class scores (.npy)")
    add_schema_options(p)
    p.add_argument("--mean", type=float, nargs=3, metavar=("B", "G", "R"),
                   help="BGR mean to subtract (default: the model's; with --net the VOC mean)")
    add_precision(p)
    add_strict(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_weights_file(args.weights)
    parsed = None
    if args.net is not None:
        parsed = require_net_file(args.net, "deploy net prototxt", schema=args.schema)
    with naming(args.net):
        written = infer(args.images, args.output, model=args.model, net_path=args.net, weights=args.weights,
                        device=args.device, save_scores=args.save_scores, mean_bgr=args.mean,
                        precision=args.precision, net_param=parsed)
    for path in written:
        print(path)
    return 0
