#!/usr/bin/env python
"""Write small random datasets in the FCN release's layouts (for tests and offline trials).

    python tools/make_synthetic_data.py voc /tmp/voc --n 4 --seed 0
    python tools/make_synthetic_data.py all /tmp/synthetic
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from fcn_repro.data import dataset_names  # noqa: E402
from fcn_repro.data.synthetic import make_dataset  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("kind", choices=dataset_names() + ("all",))
    parser.add_argument("root", type=Path, help="output folder ('all': one sub-folder per kind)")
    parser.add_argument("--n", type=int, default=3, help="items per dataset")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    kinds = dataset_names() if args.kind == "all" else (args.kind,)
    for kind in kinds:
        root = args.root / kind if args.kind == "all" else args.root
        print(f"{kind}: {make_dataset(kind, root, args.n, args.seed)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
