#!/usr/bin/env python3
"""Recurrent benchmark: one forward (and backward) of a sequence against as many single steps.

Caffe's LSTM and RNN unroll a net over the T steps of their bottom. Ours computes the input
projection of all T steps in one product and loops only the recurrence, so a sequence of
length T should cost no more than T forwards of a length-1 sequence of the same net (whose
state carries over between forwards, ``expose_hidden: false``, as in Caffe). Printed per layer
type: the sequence's time, the T single steps' time, and their ratio (target <= 1.0).

    python tools/bench_recurrent.py                   # T = 100, batch 8, 64 inputs, 128 hidden
    python tools/bench_recurrent.py --steps 20 --repeat 2
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caffe_import.net import CaffeNet  # noqa: E402

NET = """
name: "bench_{kind}"
layer {{ name: "x" type: "Input" top: "x" input_param {{ shape {{ dim: {t} dim: {n} dim: {d} }} }} }}
layer {{ name: "cont" type: "Input" top: "cont" input_param {{ shape {{ dim: {t} dim: {n} }} }} }}
layer {{ name: "rec" type: "{kind}" bottom: "x" bottom: "cont" top: "h"
  recurrent_param {{ num_output: {h}
    weight_filler {{ type: "uniform" min: -0.08 max: 0.08 }}
    bias_filler {{ type: "constant" value: 0 }} }} }}
"""


def build(kind: str, steps: int, batch: int, inputs: int, hidden: int) -> CaffeNet:
    """A net of one ``kind`` layer over a ``steps``-long sequence (fillers seeded)."""
    torch.manual_seed(0)
    text = NET.format(kind=kind, t=steps, n=batch, d=inputs, h=hidden)
    return CaffeNet(text, phase="TRAIN" if torch.is_grad_enabled() else "TEST")


def seconds(run, repeat: int) -> float:
    """The best of ``repeat`` timed calls of ``run`` (one untimed call first)."""
    run()
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        run()
        best = min(best, time.perf_counter() - start)
    return best


def compare(kind: str, args: argparse.Namespace) -> float:
    """Print and return the ratio sequence / single steps for one layer type."""
    seq = build(kind, args.steps, args.batch, args.inputs, args.hidden)
    one = build(kind, 1, args.batch, args.inputs, args.hidden)
    one.load_state_dict(seq.state_dict())
    x = torch.randn(args.steps, args.batch, args.inputs)
    cont = torch.ones(args.steps, args.batch)
    cont[0] = 0

    def sequence() -> None:
        out = seq(x=x, cont=cont)["h"]
        if args.backward:
            out.sum().backward()

    def single_steps() -> None:
        outs = [one(x=x[t:t + 1], cont=cont[t:t + 1])["h"] for t in range(args.steps)]
        if args.backward:
            torch.cat(outs).sum().backward()

    a, b = seconds(sequence, args.repeat), seconds(single_steps, args.repeat)
    print(f"{kind}: sequence of {args.steps} {a * 1e3:.1f} ms, {args.steps} single steps "
          f"{b * 1e3:.1f} ms, ratio {a / b:.2f} (target <= 1.0)")
    return a / b


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=100)
    parser.add_argument("--batch", type=int, default=8)
    parser.add_argument("--inputs", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--backward", action="store_true", help="time forward + backward")
    args = parser.parse_args(argv)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, "
          f"T={args.steps} N={args.batch} inputs={args.inputs} hidden={args.hidden}"
          f"{', forward + backward' if args.backward else ', forward'}")
    with torch.set_grad_enabled(args.backward):
        ratios = [compare(kind, args) for kind in ("LSTM", "RNN")]
    return 0 if max(ratios) <= 1.0 else 1


if __name__ == "__main__":
    sys.exit(main())
