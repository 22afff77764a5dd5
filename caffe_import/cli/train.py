"""``caffe-import train --solver S [--weights W[,W2]] [--snapshot STATE] [--gpu ID]``: Caffe's
``caffe train`` (Caffe's single-dash spellings ``-solver``, ``-weights``, ``-snapshot``,
``-gpu`` work too, so a legacy script needs only the program name changed).

Train from a solver prototxt whose nets read their data; file names are relative to the
working directory, as Caffe opens them. Logs Caffe's lines on stderr (glog's format;
``GLOG_minloglevel=1`` silences them), so Caffe's ``tools/extra/parse_log.py`` reads them;
snapshots are Caffe's ``<prefix>_iter_<N>.caffemodel`` + ``.solverstate``. Several GPUs, as
Caffe's NCCL sync: ``torchrun --nproc_per_node=2 -m caffe_import train -solver S -gpu 0,1``.
"""
from __future__ import annotations

import argparse

from ..tools.train import parse_gpus, train
from .options import naming, require_file


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("train", help="train from a solver prototxt, as Caffe's 'caffe train'",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--solver", "-solver", required=True, help="solver prototxt")
    p.add_argument("--weights", "-weights", default=None,
                   help="caffemodel(s) to finetune from, comma-separated (not with --snapshot)")
    p.add_argument("--snapshot", "-snapshot", default=None,
                   help="a .solverstate (or .solverstate.h5) to resume from")
    p.add_argument("--gpu", "-gpu", default=None,
                   help="GPU id(s) to run on (default: the CPU); several ('0,1', 'all'): one "
                        "process each, under torchrun --nproc_per_node=N")
    p.add_argument("--level", "-level", type=int, default=0, help="the train net's state level")
    p.add_argument("--stage", "-stage", default="",
                   help="the train net's state stages, comma-separated")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    require_file(args.solver, "a solver prototxt")
    with naming(args.solver):
        train(args.solver, weights=args.weights, snapshot=args.snapshot,
              gpus=parse_gpus(args.gpu), level=args.level,
              stages=[s for s in args.stage.split(",") if s])
    return 0
