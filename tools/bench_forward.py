#!/usr/bin/env python3
"""Forward-pass benchmark: the converted CaffeNet FCN-8s against a hand-written nn.Module.

The baseline is what users of the PyTorch FCN ports run today: a hand-written FCN-8s module
(VGG16 trunk with pad 100, ceil-mode pooling, 7x7 fc6, learned-shape transposed convs, crops
by slicing), loaded with the same random weights that our writer put in a caffemodel. Both run
in the same process on the same input; the script prints ms/image for each and the ratio
``caffenet / handwritten`` (target <= 1.05: the converted graph costs nothing extra), plus the
maximum difference between the two outputs.

With a CUDA device it also times fp32, TF32, bf16 autocast, channels_last, torch.compile and
CUDA-graph variants of the CaffeNet at batch 1 and 8, and checks the best variant against fp32
(argmax agreement as mean IU and pixel agreement, max relative error).

    python tools/bench_forward.py                # CPU, 500x500, batch 1
    python tools/bench_forward.py --size 256     # smaller, faster
    python tools/bench_forward.py --device cuda  # all GPU variants
"""
from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

VGG_CFG = [  # (block, convs, width)
    (1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512),
]


class HandwrittenFCN8s(nn.Module):
    """FCN-8s written by hand the way PyTorch ports write it (the baseline)."""

    def __init__(self, num_classes: int = 21) -> None:
        super().__init__()
        self.convs = nn.ModuleDict()
        c_in = 3
        for block, n, width in VGG_CFG:
            for i in range(1, n + 1):
                pad = 100 if (block, i) == (1, 1) else 1
                self.convs[f"conv{block}_{i}"] = nn.Conv2d(c_in, width, 3, padding=pad)
                c_in = width
        self.fc6 = nn.Conv2d(512, 4096, 7)
        self.fc7 = nn.Conv2d(4096, 4096, 1)
        self.score_fr = nn.Conv2d(4096, num_classes, 1)
        self.score_pool4 = nn.Conv2d(512, num_classes, 1)
        self.score_pool3 = nn.Conv2d(256, num_classes, 1)
        self.upscore2 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore_pool4 = nn.ConvTranspose2d(num_classes, num_classes, 4, stride=2, bias=False)
        self.upscore8 = nn.ConvTranspose2d(num_classes, num_classes, 16, stride=8, bias=False)

    def load_caffe_weights(self, weights: dict) -> None:
        mods = dict(self.convs.items())
        mods.update(fc6=self.fc6, fc7=self.fc7, score_fr=self.score_fr,
                    score_pool4=self.score_pool4, score_pool3=self.score_pool3,
                    upscore2=self.upscore2, upscore_pool4=self.upscore_pool4,
                    upscore8=self.upscore8)
        with torch.no_grad():
            for name, mod in mods.items():
                blobs = weights[name]
                mod.weight.copy_(torch.from_numpy(np.asarray(blobs[0])).reshape(mod.weight.shape))
                if mod.bias is not None:
                    mod.bias.copy_(torch.from_numpy(np.asarray(blobs[1])).reshape(mod.bias.shape))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = x
        feats = {}
        for block, n, _ in VGG_CFG:
            for i in range(1, n + 1):
                h = F.relu(self.convs[f"conv{block}_{i}"](h), inplace=True)
            h = F.max_pool2d(h, 2, 2, ceil_mode=True)
            feats[block] = h
        h = F.relu(self.fc6(h), inplace=True)
        h = F.relu(self.fc7(h), inplace=True)
        h = self.upscore2(self.score_fr(h))
        s4 = self.score_pool4(feats[4])[:, :, 5:5 + h.shape[2], 5:5 + h.shape[3]]
        h = self.upscore_pool4(h + s4)
        s3 = self.score_pool3(feats[3])[:, :, 9:9 + h.shape[2], 9:9 + h.shape[3]]
        h = self.upscore8(h + s3)
        return h[:, :, 31:31 + x.shape[2], 31:31 + x.shape[3]].contiguous()


def fcn8s_deploy_net():
    """The release's FCN-8s deploy net, from the zoo."""
    from fcn_repro import zoo
    return zoo.get("voc-fcn8s").deploy_net()


def random_weights(net_param, seed: int = 0) -> dict:
    """Random weights of the right shapes (Gaussian, std 0.01; bilinear deconvs not needed)."""
    from caffe_import.net import CaffeNet
    shapes_net = CaffeNet(net_param)  # zero-initialised; gives Caffe's blob shapes
    rng = np.random.default_rng(seed)
    out = {}
    for name, blobs in shapes_net.params.items():
        out[name] = [rng.standard_normal(tuple(b.shape), dtype=np.float32) * np.float32(0.01)
                     for b in blobs]
    del shapes_net
    return out


def time_fn(fn: Callable[[], object], reps: int, warmup: int, sync: Callable[[], None]) -> list[float]:
    for _ in range(warmup):
        fn()
    sync()
    times = []
    for _ in range(reps):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append((time.perf_counter() - t0) * 1000.0)
    return times


def mean_iu_agreement(a: torch.Tensor, b: torch.Tensor, n: int) -> float:
    """Mean IU of argmax map ``a`` against ``b`` taken as ground truth."""
    hist = torch.bincount((b.flatten() * n + a.flatten()).long(), minlength=n * n).reshape(n, n).double()
    iu = hist.diag() / (hist.sum(0) + hist.sum(1) - hist.diag())
    return float(torch.nanmean(iu))


def cpu_benchmark(args, net_param, weights_path: str, weights: dict) -> None:
    from caffe_import.net import CaffeNet

    torch.manual_seed(0)
    x = torch.randn(args.batch, 3, args.size, args.size)
    caffe = CaffeNet(net_param, weights=weights_path).eval()
    hand = HandwrittenFCN8s(num_classes=caffe.params["score_fr"][0].shape[0]).eval()
    hand.load_caffe_weights(weights)
    out_name = "score"

    with torch.inference_mode():
        y_c = caffe(data=x, outputs=[out_name])[out_name]
        y_h = hand(x)
        diff = float((y_c - y_h).abs().max() / y_h.abs().max().clamp_min(1e-30))
        runs_c, runs_h = [], []
        # interleave to share the machine's noise between the two
        for _ in range(args.reps):
            runs_h += time_fn(lambda: hand(x), 1, 0, lambda: None)
            runs_c += time_fn(lambda: caffe(data=x, outputs=[out_name]), 1, 0, lambda: None)
    med_c, med_h = statistics.median(runs_c), statistics.median(runs_h)
    print(f"device: cpu ({torch.get_num_threads()} threads), input {args.batch}x3x{args.size}x{args.size}, "
          f"torch {torch.__version__}")
    print(f"handwritten nn.Module FCN-8s : {med_h / args.batch:9.1f} ms/image")
    print(f"converted CaffeNet FCN-8s    : {med_c / args.batch:9.1f} ms/image")
    print(f"output max |diff| / max |ref|: {diff:.2e}")
    print(f"ratio caffenet/handwritten   : {med_c / med_h:.3f}  (target <= 1.05)")


def cuda_benchmark(args, net_param, weights_path: str) -> None:
    from caffe_import.net import CaffeNet

    dev = torch.device(args.device)
    print(f"device: {torch.cuda.get_device_name(dev)}, torch {torch.__version__}, "
          f"input 3x{args.size}x{args.size}")
    base = CaffeNet(net_param, weights=weights_path).to(dev).eval()
    n_cls = base.params["score_fr"][0].shape[0]
    sync = torch.cuda.synchronize
    results = {}
    for batch in (1, 8):
        x = torch.randn(batch, 3, args.size, args.size, device=dev)
        with torch.inference_mode():
            ref = base(data=x, outputs=["score"])["score"].float()

        def variant(name: str, fn: Callable[[], torch.Tensor]) -> None:
            try:
                with torch.inference_mode():
                    times = time_fn(fn, args.reps, 3, sync)
                    out = fn().float()
            except Exception as exc:  # a variant that does not work here is reported, not fatal
                print(f"  batch {batch} {name:<22}: failed ({type(exc).__name__}: {exc})")
                return
            ms = statistics.median(times) / batch
            rel = float((out - ref).abs().max() / ref.abs().max())
            agree = float((out.argmax(1) == ref.argmax(1)).float().mean())
            miu = mean_iu_agreement(out.argmax(1), ref.argmax(1), n_cls)
            results[(name, batch)] = ms
            print(f"  batch {batch} {name:<22}: {ms:7.2f} ms/image {1000 / ms:8.1f} img/s  "
                  f"max rel err {rel:.2e}  argmax agree {agree * 100:.3f}%  mean IU {miu * 100:.2f}")

        torch.backends.cuda.matmul.allow_tf32 = False
        torch.backends.cudnn.allow_tf32 = False
        variant("fp32", lambda: base(data=x, outputs=["score"])["score"])
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
        variant("tf32", lambda: base(data=x, outputs=["score"])["score"])

        def bf16():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return base(data=x, outputs=["score"])["score"]
        variant("bf16 autocast", bf16)

        cl = CaffeNet(net_param, weights=weights_path).to(dev).eval().to(memory_format=torch.channels_last)
        xcl = x.contiguous(memory_format=torch.channels_last)

        def bf16_cl():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return cl(data=xcl, outputs=["score"])["score"]
        variant("bf16 channels_last", bf16_cl)

        compiled = torch.compile(cl, mode="max-autotune-no-cudagraphs")

        def bf16_cl_compile():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return compiled(data=xcl, outputs=["score"])["score"]
        variant("bf16 cl compile", bf16_cl_compile)

        graphed = torch.compile(cl, mode="max-autotune")  # CUDA graphs

        def bf16_cl_graphs():
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return graphed(data=xcl, outputs=["score"])["score"].clone()
        variant("bf16 cl cudagraphs", bf16_cl_graphs)
    if results:
        best = min(results.items(), key=lambda kv: kv[1])
        print(f"best: {best[0][0]} at batch {best[0][1]}: {best[1]:.2f} ms/image")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--batch", type=int, default=1)
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    from caffe_import.io import write_weights

    net_param = fcn8s_deploy_net()
    weights = random_weights(net_param)
    with tempfile.TemporaryDirectory() as tmp:
        path = os.path.join(tmp, "fcn8s_random.caffemodel")
        write_weights(path, net_param, weights)
        print(f"weights: {sum(a.size for b in weights.values() for a in b) / 1e6:.1f}M params "
              f"written by caffe_import.write_weights ({os.path.getsize(path) / 1e6:.0f} MB)")
        if args.device.startswith("cuda"):
            cuda_benchmark(args, net_param, path)
        else:
            cpu_benchmark(args, net_param, path, weights)
    return 0


if __name__ == "__main__":
    sys.exit(main())
