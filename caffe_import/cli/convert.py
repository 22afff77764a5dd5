"""``caffe-import convert NET WEIGHTS -o model.pt``: one self-contained artefact file."""
from __future__ import annotations

import argparse

from .options import add_schema_options, naming, output_file, require_net_file, schema_args


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "convert", help="write a net and its weights as one artefact (.pt or .safetensors)",
        description="Build NET with WEIGHTS and write one file holding the net definition, its "
                    "state (phase, stages, level) and every param blob. `.pt` loads with "
                    "torch.load(weights_only=True); `.safetensors` with safetensors; both with "
                    "caffe_import.load. No pickled code.")
    p.add_argument("net", help="net prototxt")
    p.add_argument("weights", help="caffemodel or .caffemodel.h5")
    p.add_argument("-o", "--output", type=output_file, required=True, help="artefact to write (.pt or .safetensors)")
    p.add_argument("--phase", choices=("test", "train"), default="test",
                   help="net phase: which layers Caffe's include/exclude rules keep")
    p.add_argument("--stage", action="append", default=[], help="a net stage (repeatable)")
    p.add_argument("--level", type=int, default=0, help="net level, for include/exclude min_level and max_level rules")
    add_schema_options(p)
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from ..convert import save_converted
    from ..net import CaffeNet

    schema = schema_args(args)
    require_net_file(args.net, **schema)
    with naming(args.net):
        net = CaffeNet(args.net, args.weights, phase=args.phase, stages=tuple(args.stage),
                       level=args.level, **schema)
    save_converted(net, args.output)
    n = sum(p.numel() for ps in net.params.values() for p in ps)
    print(f"wrote {args.output}: {len(net.layer_names)} layers, {n} param values")
    return 0
