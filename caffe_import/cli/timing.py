"""``caffe-import time --model M [--iterations N] [--phase TRAIN|TEST] [--gpu ID]``: Caffe's
``caffe time`` (also ``-model``, ``-iterations``, ``-phase``, ``-gpu``, ``-level``, ``-stage``).

Time each layer's forward and backward over ``iterations`` passes (after one untimed pass)
and log the averages in Caffe's lines on stderr.
"""
from __future__ import annotations

import argparse

from ..tools.timing import time_net
from ..tools.train import parse_gpus
from .options import naming, require_net_file
from .score import add_net_flags


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("time", help="time a net's layers, as Caffe's 'caffe time'",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_net_flags(p)
    p.add_argument("--phase", "-phase", default="TRAIN", type=str.upper, choices=("TRAIN", "TEST"),
                   help="the phase to build the net in")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_net_file(args.model)
    with naming(args.model):
        time_net(args.model, args.iterations, phase=args.phase.lower(),
                 gpus=parse_gpus(args.gpu), level=args.level,
                 stages=[s for s in args.stage.split(",") if s])
    return 0
