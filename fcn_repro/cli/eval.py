"""``fcn-repro eval``: score a model on a dataset split, as the release's score.py does."""
from __future__ import annotations

import argparse
from pathlib import Path

from caffe_import.cli.options import add_strict
from caffe_import.cli.options import (add_precision, add_schema_options, device, naming, output_dir,
    output_file_path, require_net_file, require_weights_file)
from caffe_import.errors import UsageError
from fcn_repro.data import DATASETS, MODALITIES, dataset_names
from fcn_repro.evaluate import evaluate, format_summary


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("eval", help="score a model on a dataset split (pixel acc, mean acc, mean IU, f.w. IU)",
                       description="Score a net on a dataset split with the release's preprocessing "
                                   "and score.py's metrics; writes metrics.json.")
    which = p.add_mutually_exclusive_group(required=True)
    which.add_argument("--model", help="a zoo model name (its deploy net), e.g. voc-fcn8s")
    which.add_argument("--net", type=Path, help="a deploy prototxt")
    p.add_argument("--weights", type=Path, required=True, help="caffemodel (binary or HDF5)")
    p.add_argument("--dataset", choices=dataset_names(), help="default: the model's dataset")
    p.add_argument("--root", type=Path, required=True, help="the dataset folder (see fcn_repro.data)")
    p.add_argument("--split", help="default: the split the release scored: " + ", ".join(
        f"{d.eval_split} ({d.name})" for d in DATASETS.values()))
    p.add_argument("--modality", choices=list(MODALITIES),
                   help="NYUDv2 inputs (default: from the model name)")
    p.add_argument("--device", type=device, default="cpu", help="torch device, e.g. cuda, cuda:1 (default cpu)")
    p.add_argument("--save-predictions", type=output_dir, metavar="DIR", help="write predictions as palette PNGs")
    p.add_argument("--limit", type=int, help="only the first N images")
    p.add_argument("--workers", type=int, default=0, help="DataLoader worker processes")
    p.add_argument("--exclude-absent", action="store_true",
                   help="leave classes absent from the ground truth out of the class averages")
    p.add_argument("-o", "--output", type=output_file_path, default=Path("metrics.json"), help="metrics.json path")
    p.add_argument("--name", help="model name recorded in metrics.json (what 'fcn-repro tables' matches); "
                                  "default: --model, or with --net the zoo model whose deploy net "
                                  "the prototxt computes, else the prototxt's file name")
    add_precision(p)
    p.add_argument("--agreement-images", type=int, default=4, metavar="N",
                   help="with --precision fast: compare with exact on the first N images "
                        "(argmax agreement, max prob diff; recorded in metrics.json); 0: skip")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    add_schema_options(p)
    add_strict(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    if args.limit is not None and args.limit < 1:
        raise UsageError(f"--limit {args.limit}: give at least 1 image (a split of no images has no scores)")
    require_weights_file(args.weights)
    parsed = None
    if args.net is not None:
        if args.dataset is None:
            raise UsageError(f"--net needs --dataset ({', '.join(dataset_names())}): a bare "
                             f"prototxt ({args.net}) does not say what it was trained on")
        parsed = require_net_file(args.net, "deploy net prototxt", schema=args.schema)
    with naming(args.net):
        record = evaluate(model=args.model, net_path=args.net, weights=args.weights, dataset=args.dataset,
                          root=args.root, split=args.split, device=args.device,
                          save_predictions=args.save_predictions, limit=args.limit, workers=args.workers,
                          output=args.output, progress=not args.no_progress, modality=args.modality,
                          exclude_absent=args.exclude_absent, name=args.name,
                          precision=args.precision, agreement_images=args.agreement_images,
                          net_param=parsed)
    print(format_summary(record))
    print(f"wrote {args.output}")
    return 0
