"""``caffe-import compute-image-mean [--backend lmdb|leveldb] DB [OUT]``: the mean image of a
database of Datums, as Caffe's ``compute_image_mean`` computes it (float32 sums divided by the
count), written as a ``.binaryproto`` when OUT is given; prints the mean of each channel.
Caffe's flag spelling ``-backend`` works too.
"""
from __future__ import annotations

import argparse

from ..io.datasets import BACKENDS, channel_means, image_mean, open_db, write_mean
from .convert_imageset import add_flag
from .options import output_file


def register(sub) -> None:
    parser = sub.add_parser("compute-image-mean", help="mean image of a database "
                            "(Caffe's compute_image_mean)", description=__doc__.split("\n\n")[0])
    parser.add_argument("db", metavar="DB", help="LMDB or LevelDB folder of Datums")
    parser.add_argument("out", metavar="OUT", nargs="?", type=output_file, default=None,
                        help="the .binaryproto to write (default: only print the means)")
    add_flag(parser, "backend", choices=BACKENDS, default="lmdb",
             help="database kind (default: lmdb, as Caffe's tool)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    mean = image_mean(open_db(args.db, args.backend))
    if args.out is not None:
        write_mean(args.out, mean)
        print(f"Write to {args.out}")
    print(f"Number of channels: {mean.shape[1]}")
    for c, value in enumerate(channel_means(mean)):
        print(f"mean_value channel [{c}]: {value:g}")
    return 0
