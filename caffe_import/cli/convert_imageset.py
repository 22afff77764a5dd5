"""``caffe-import convert-imageset [FLAGS] ROOT/ LIST DB``: images into a database of Datums,
as Caffe's ``convert_imageset`` tool writes it (Caffe itself reads the result).

LIST has one ``name label`` per line (split at the last space); each image is read from
ROOT + name (a plain prefix: end ROOT with ``/``) with OpenCV, as Caffe reads it, and stored
under the key ``%08d_<name>``. Caffe's flag spellings work too (``-resize_height 256``,
``--backend=leveldb``). Unlike Caffe, an unreadable image is an error, not a skipped line,
and nothing is written then: the database appears only once complete.
"""
from __future__ import annotations

import argparse

from ..io.datasets import BACKENDS, ImagesetOptions, convert_imageset


def add_flag(parser: argparse.ArgumentParser, name: str, **kwargs) -> None:
    """``--name``, Caffe's gflags spellings ``-name`` and, where it has ``_``, ``--na-me``."""
    spellings = [f"--{name}", f"-{name}"]
    if "_" in name:
        spellings.append(f"--{name.replace('_', '-')}")
    parser.add_argument(*spellings, dest=name, **kwargs)


def register(sub) -> None:
    parser = sub.add_parser("convert-imageset", help="images into an LMDB/LevelDB of Datums "
                            "(Caffe's convert_imageset)", description=__doc__.split("\n\n")[0])
    parser.add_argument("root", metavar="ROOT/", help="prefix of every image name in LIST")
    parser.add_argument("list", metavar="LIST", help="image list: 'name label' per line")
    parser.add_argument("db", metavar="DB", help="the database folder to create")
    add_flag(parser, "gray", action="store_true", help="read the images as greyscale")
    add_flag(parser, "shuffle", action="store_true",
             help="shuffle the lines (with --seed; not Caffe's order)")
    add_flag(parser, "seed", type=int, default=None,
             help="seed of --shuffle (default: a fresh random order)")
    add_flag(parser, "backend", choices=BACKENDS, default="lmdb",
             help="database kind to write (default: lmdb)")
    add_flag(parser, "resize_height", type=int, default=0, metavar="H",
             help="resize to this height (with --resize_width; default 0: keep)")
    add_flag(parser, "resize_width", type=int, default=0, metavar="W",
             help="resize to this width (with --resize_height; default 0: keep)")
    add_flag(parser, "check_size", action="store_true",
             help="require every image to have the same size")
    add_flag(parser, "encoded", action="store_true",
             help="store the encoded image (the file's bytes where possible)")
    add_flag(parser, "encode_type", default="", metavar="EXT",
             help="encode as this type (png, jpg...; implies --encoded; default: the file's)")
    parser.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    options = ImagesetOptions(gray=args.gray, shuffle=args.shuffle, seed=args.seed,
                              backend=args.backend, resize_height=args.resize_height,
                              resize_width=args.resize_width, check_size=args.check_size,
                              encoded=args.encoded, encode_type=args.encode_type)
    convert_imageset(args.root, args.list, args.db, options, say=print)
    return 0
