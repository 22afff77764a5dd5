#!/usr/bin/env python
"""Write prototxt/<model>/{train,val,deploy}.prototxt and solver.prototxt for every zoo model.

    python tools/gen_prototxt.py [--out prototxt] [--check] [MODEL ...]

``--check`` writes nothing and exits 1 if any checked-in file differs from what the zoo
generates (tests/fcn_repro/zoo/test_zoo.py runs the same comparison).
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fcn_repro import zoo  # noqa: E402
from caffe_import.io.atomic import atomic_write_text  # noqa: E402
from fcn_repro.zoo.render import render_model  # noqa: E402


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("models", nargs="*", help="models (default: all)")
    ap.add_argument("--out", type=Path, default=ROOT / "prototxt")
    ap.add_argument("--check", action="store_true", help="compare, write nothing")
    args = ap.parse_args(argv)
    stale = []
    for name in args.models or zoo.names():
        for fname, text in render_model(name).items():
            path = args.out / zoo.get(name).name / fname
            current = path.read_text(encoding="utf-8") if path.is_file() else None
            if current == text:
                continue
            if args.check:
                stale.append(str(path))
            else:
                atomic_write_text(path, text)
                print(f"wrote {path}")
    if stale:
        print("stale (run tools/gen_prototxt.py):\n  " + "\n  ".join(stale), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
