#!/usr/bin/env python3
"""DetectionOutput benchmark: SSD300's head (8732 priors, 21 classes, top_k 400, keep_top_k 200,
confidence 0.01, NMS 0.45) on the CPU, with priors clustered as a real detector's boxes are.

Times the layer's forward with its CPU NMS (blocks of candidates against the boxes kept so far)
and, as the baseline in the same run, with the NMS the layer uses on other devices (the whole
overlap matrix, then one candidate at a time: what it ran on the CPU before); checks that both
give the same rows and prints the time ratio baseline / ours.

    python tools/bench_detection.py                 # SSD300-sized, 1 thread
    python tools/bench_detection.py --priors 2000   # smaller, for a quick look
"""
from __future__ import annotations

import argparse
import time
from unittest import mock

import torch
from google.protobuf import text_format

from caffe_import.forks.ssd import layers as ssd
from caffe_import.proto.schema import get_schema

LAYER = """name: "detection_out" type: "DetectionOutput" bottom: "loc" bottom: "conf"
  bottom: "priors" top: "out"
  detection_output_param {{ num_classes: {classes} share_location: true background_label_id: 0
    nms_param {{ nms_threshold: 0.45 top_k: 400 }} code_type: CENTER_SIZE keep_top_k: 200
    confidence_threshold: 0.01 }}"""


def make_case(priors: int, classes: int, batch: int = 1, seed: int = 0):
    """The layer and its bottoms: softmax-ed scores, priors around 40 centres."""
    gen = torch.Generator().manual_seed(seed)
    param = text_format.Parse(LAYER.format(classes=classes), get_schema("ssd").LayerParameter())
    loc = torch.randn(batch, priors * 4, generator=gen) * 0.2
    conf = torch.softmax(torch.randn(batch, priors, classes, generator=gen) * 2, -1)
    centres = torch.rand(40, 2, generator=gen) * 0.8 + 0.1
    c = centres[torch.randint(0, 40, (priors,), generator=gen)]
    c = c + torch.randn(priors, 2, generator=gen) * 0.01
    wh = torch.rand(priors, 2, generator=gen) * 0.3 + 0.1
    boxes = torch.cat([c - wh / 2, c + wh / 2], 1).reshape(-1)
    prior = torch.stack([boxes, torch.full_like(boxes, 0.1)])[None]
    bottoms = (loc, conf.reshape(batch, -1), prior)
    layer = ssd.DetectionOutput(param, [tuple(b.shape) for b in bottoms])
    return layer, bottoms


def best_time(fn, repeat: int) -> tuple[float, torch.Tensor]:
    """The fastest of ``repeat`` runs (seconds) and the last result."""
    best, out = float("inf"), None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        best = min(best, time.perf_counter() - t)
    return best, out


def sequential_nms(boxes, valid, threshold, eta):
    """The layer's NMS as it runs off the CPU (the baseline)."""
    lead, k = valid.shape[:-1], valid.shape[-1]
    flat = boxes.reshape(-1, k, 4)
    coords = [c.contiguous() for c in flat.unbind(-1)]
    keep = ssd._nms_sequential(coords, ssd.box_size(flat), valid.reshape(-1, k), threshold, eta)
    return keep.reshape(*lead, k)


def run(priors: int = 8732, classes: int = 21, repeat: int = 5) -> dict:
    layer, bottoms = make_case(priors, classes)
    with torch.no_grad():
        ours, out = best_time(lambda: layer(*bottoms)[0], repeat)
        with mock.patch.object(ssd, "greedy_nms", sequential_nms):
            base, ref = best_time(lambda: layer(*bottoms)[0], repeat)
    if not torch.equal(out, ref):
        raise SystemExit("the two NMS paths disagree")
    return {"ours_ms": ours * 1e3, "baseline_ms": base * 1e3, "ratio": base / ours,
            "rows": int(out.shape[2])}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--priors", type=int, default=8732)
    ap.add_argument("--classes", type=int, default=21)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    r = run(args.priors, args.classes, args.repeat)
    print(f"DetectionOutput {args.priors} priors x {args.classes} classes, {r['rows']} rows: "
          f"ours {r['ours_ms']:.1f} ms, overlap-matrix baseline {r['baseline_ms']:.1f} ms, "
          f"ratio {r['ratio']:.2f}x")


if __name__ == "__main__":
    main()
