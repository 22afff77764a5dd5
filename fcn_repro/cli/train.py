"""`fcn-repro train`: train a zoo model with the release's recipe and Caffe's solver.

Examples (the release's chain, each stage initialised from the previous by surgery):

    fcn-repro train --model voc-fcn32s --dataset sbd --root SBD --val-dataset voc --val-root VOC2011 \\
        --init VGG_ILSVRC_16_layers.caffemodel --out runs/fcn32s
    fcn-repro train --model voc-fcn16s ... --init runs/fcn32s/snapshots/train_iter_100000.caffemodel

Without --dataset a model trains on its own dataset, as `fcn-repro eval` scores it (the release
trained the VOC models on SBD: --dataset sbd --val-dataset voc). On Ctrl-C the run snapshots,
says the iteration it saved and the command that continues it (--resume). A full-size FCN
snapshot is 1.1 GB: --keep-last N keeps only the N newest.

Under ``torchrun`` (``WORLD_SIZE`` > 1) training is data-parallel and the evaluation sharded.
"""
from __future__ import annotations

import argparse
import os
import shlex
from typing import Any

from caffe_import.cli.options import device, output_dir, require_weights_file
from caffe_import.device import resolve_device
from caffe_import.errors import UsageError
from fcn_repro.data.registry import dataset_names
from fcn_repro.evaluate import format_scores
from fcn_repro.train import train_distributed, train_model


def register(sub: Any) -> None:
    p = sub.add_parser("train", help="train a zoo model (the release's solve.py)",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", required=True, help="zoo model name, e.g. voc-fcn32s")
    p.add_argument("--dataset", choices=dataset_names(), help="training dataset (default: the model's)")
    p.add_argument("--root", required=True, help="dataset folder in the release's layout")
    p.add_argument("--val-dataset", default=None, choices=dataset_names(), help="evaluation dataset (default: --dataset)")
    p.add_argument("--val-root", default=None, help="evaluation dataset folder (default: --root)")
    p.add_argument("--train-split", default=None,
                   help="split to train on (default: trainval for siftflow and nyud, else train)")
    p.add_argument("--val-split", default=None,
                   help="split to score (default: seg11valid for voc, test for siftflow and nyud, else val)")
    p.add_argument("--init", default=None,
                   help="weights to transplant from (classifier or previous stage; caffemodel or .h5)")
    p.add_argument("--device", type=device, default=None, help="torch device (default: cuda if available, else cpu)")
    p.add_argument("--max-iter", type=int, default=None, help="override the solver's max_iter")
    p.add_argument("--out", type=output_dir, default="train_out", help="output folder (snapshots, logs, plot)")
    p.add_argument("--resume", action="store_true", help="continue from the newest snapshot in --out")
    p.add_argument("--eval-interval", type=int, default=None,
                   help="score the val split every N iterations (default: the solver's snapshot, 4000)")
    p.add_argument("--eval-limit", type=int, default=None, help="score only the first N val images")
    p.add_argument("--snapshot", type=int, default=None, help="snapshot every N iterations")
    p.add_argument("--keep-last", type=int, default=None, metavar="N",
                   help="keep only the N newest snapshots (each 1.1 GB for a full-size FCN); default: all")
    p.add_argument("--limit", type=int, default=None, help="use only the first N images of each split")
    p.add_argument("--seed", type=int, default=1337, help="shuffle seed (default: 1337, the release's data layers')")
    p.add_argument("--no-progress", action="store_true", help="no tqdm progress bar")
    p.set_defaults(func=run, command_options=[(a.option_strings[0], a.dest, a.default, a.nargs == 0)
                                              for a in p._actions if a.option_strings and a.dest != "help"])


def run(args: argparse.Namespace) -> int:
    for option, value in (("--limit", args.limit), ("--eval-limit", args.eval_limit)):
        if value is not None and value < 1:
            raise UsageError(f"{option} {value}: give at least 1 image")
    if args.keep_last is not None and args.keep_last < 1:
        raise UsageError(f"--keep-last {args.keep_last}: keep at least 1 snapshot (the one --resume needs)")
    if args.init is not None:
        require_weights_file(args.init, "weights to transplant from (--init)")
    ddp = int(os.environ.get("WORLD_SIZE", "1")) > 1
    device = args.device or resolve_device("auto").type  # the one resolver's "auto"
    kwargs = dict(val_dataset=args.val_dataset, val_root=args.val_root, train_split=args.train_split,
                  val_split=args.val_split, limit=args.limit, out=args.out, init=args.init,
                  max_iter=args.max_iter, resume=args.resume, eval_interval=args.eval_interval,
                  eval_limit=args.eval_limit, snapshot_interval=args.snapshot, seed=args.seed,
                  progress=not args.no_progress, say=print, keep_last=args.keep_last)
    try:
        if ddp:
            result = train_distributed(args.model, args.dataset, args.root, device=args.device, **kwargs)
        else:
            result = train_model(args.model, args.dataset, args.root, device=device, **kwargs)
    except KeyboardInterrupt:
        if int(os.environ.get("RANK", "0")) == 0:
            print(f"continue with: {resume_command(args)}", flush=True)
        raise
    if result is None:  # not the main rank
        return 0
    print(f"trained to iteration {result.iterations} -> {result.out}")
    if result.evals:  # the last val scores, in percent as `fcn-repro eval` prints them
        print(f"  val at iteration {result.evals[-1]['iter']}: {format_scores(result.evals[-1])}")
    return 0


def resume_command(args: argparse.Namespace) -> str:
    """The command line that continues this run: its options as given, plus ``--resume``."""
    words = ["fcn-repro", "train"]
    for option, dest, default, flag in args.command_options:
        value = getattr(args, dest)
        if dest == "resume" or value == default:
            continue
        words += [option] if flag else [option, str(value)]
    return shlex.join([*words, "--resume"])
