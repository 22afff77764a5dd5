"""``fcn-repro infer``: segment image files (label PNG, overlay, optional scores)."""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

from tqdm import tqdm

from caffe_import.cli.options import (add_precision, add_schema_options, add_strict, device,
                                      input_path, naming, output_dir, require_net_file,
                                      require_weights_file)
from caffe_import.errors import UsageError
from fcn_repro.infer import ImageDone, infer


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
                                   "refused before anything is computed.\n\n"
                                   "A folder given as IMAGE gives the images directly inside it. "
                                   "A net with several inputs (nyud-fcn32s-color-hha: color and "
                                   "hha) takes the images as one and each other with --input "
                                   "NAME=FILE_OR_FOLDER, paired by file name (--input hha=HHA_DIR). "
                                   "Every image is decoded and paired before any is written; "
                                   "each output path is printed when its image is done, so a "
                                   "stopped run lists what it wrote.",
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a zoo model name, e.g. voc-fcn8s (its deploy net and mean)")
    which.add_argument("--net", type=Path, help="a deploy prototxt (VOC mean unless --mean)")
    p.add_argument("--weights", type=Path, required=True, help="caffemodel or .caffemodel.h5")
    p.add_argument("images", nargs="+", type=Path, metavar="IMAGE",
                   help="image files (JPEG, PNG, ...: anything Pillow reads) or folders of them")
    p.add_argument("--input", action="append", default=[], type=input_path,
                   metavar="NAME=FILE_OR_FOLDER",
                   help="the files of another net input, paired with the images by file name "
                        "(NYUDv2 colour + HHA: --input hha=DIR); repeat for more inputs")
    p.add_argument("-o", "--output", type=output_dir, required=True, metavar="DIR",
                   help="folder for the outputs (created if missing)")
    p.add_argument("--device", type=device, default="cpu", help="torch device, e.g. cuda, cuda:1")
    p.add_argument("--save-scores", action="store_true", help="also write the class scores (.npy)")
    add_schema_options(p)
    p.add_argument("--mean", type=float, nargs=3, metavar=("B", "G", "R"),
                   help="BGR mean to subtract (default: the model's; with --net the VOC mean)")
    add_precision(p)
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_strict(p)
    p.set_defaults(func=run)


def named_inputs(specs: list[tuple[str, Path]]) -> dict[str, Path]:
    """``--input NAME=PATH`` options (:func:`~caffe_import.cli.options.input_path`) as
    ``{NAME: PATH}``."""
    out: dict[str, Path] = {}
    for name, path in specs:
        if name in out:
            raise UsageError(f"--input {name} given twice")
        out[name] = path
    return out


def run(args: argparse.Namespace) -> int:
    inputs = named_inputs(args.input)
    require_weights_file(args.weights)
    parsed = None
    if args.net is not None:
        parsed = require_net_file(args.net, "deploy net prototxt", schema=args.schema)
    done: list[ImageDone] = []

    def report(image: ImageDone) -> None:  # as each image is done: a stop leaves the list true
        for path in image.paths:
            tqdm.write(str(path), file=sys.stdout)
        done.append(image)

    try:
        with naming(args.net):
            infer(args.images, args.output, model=args.model, net_path=args.net, weights=args.weights,
                  device=args.device, save_scores=args.save_scores, mean_bgr=args.mean,
                  precision=args.precision, net_param=parsed, inputs=inputs,
                  progress=not args.no_progress, on_image=report)
    except BaseException:
        if done:
            sys.stdout.flush()
            print(f"stopped after {len(done)} of {done[-1].total} images: their files are listed "
                  "above; nothing was written for the others", file=sys.stderr)
        raise
    return 0
