"""``caffe-import test --model M --weights W [--iterations N] [--gpu ID]``: Caffe's ``caffe
test`` (also ``-model``, ``-weights``, ``-iterations``, ``-gpu``, ``-level``, ``-stage``).

Run the net in the TEST phase (its data layers reading) ``iterations`` times and log, as
Caffe does on stderr, ``Batch i, name = value`` per output element and forward, then
``Loss: L`` and ``name = mean`` (`` (* weight = loss loss)`` for loss outputs).
"""
from __future__ import annotations

import argparse

from ..tools.score import score
from ..tools.train import parse_gpus
from .options import naming, require_net_file, require_weights_file


def add_net_flags(p: argparse.ArgumentParser, iterations: int = 50) -> None:
    """``--model``, ``--iterations``, ``--gpu``, ``--level``, ``--stage`` as Caffe's tool
    names them (single dash too)."""
    p.add_argument("--model", "-model", required=True, help="net prototxt")
    p.add_argument("--iterations", "-iterations", type=int, default=iterations,
                   help="number of forwards")
    p.add_argument("--gpu", "-gpu", default=None, help="GPU id to run on (default: the CPU)")
    p.add_argument("--level", "-level", type=int, default=0, help="the net state's level")
    p.add_argument("--stage", "-stage", default="",
                   help="the net state's stages, comma-separated")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("test", help="score a model, as Caffe's 'caffe test'",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    add_net_flags(p)
    p.add_argument("--weights", "-weights", required=True, help="caffemodel to score")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_net_file(args.model)
    require_weights_file(args.weights)
    with naming(args.model):
        score(args.model, args.weights, args.iterations, gpus=parse_gpus(args.gpu),
              level=args.level, stages=[s for s in args.stage.split(",") if s])
    return 0
