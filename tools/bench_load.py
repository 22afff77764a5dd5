#!/usr/bin/env python3
"""Load benchmark: memory and time of reading a full-size caffemodel AND building the net.

Writes the release's FCN-8s (VGG16, 134M params, about 538 MB) with random weights using our
writer, then, in fresh child processes (so no child inherits a parent's memory):

* ours: ``CaffeNet(deploy_net, weights=path)`` - the wire-level reader's mapped views are
  copied into the params chunk by chunk and their pages released behind the copy;
* baseline: protobuf ``ParseFromString`` + ``np.array(blob.data)`` per blob, then the same
  CaffeNet loaded from that mapping (what a converter built on generated protobuf code does).

Each child reports the resident memory after its imports (the baseline of the interpreter and
torch), its peak (``VmHWM``) after read + build, and the time. Printed: peak RSS above the
imports / file size for both (target for ours: about 1.0 - the net holds one copy of the
weights), the absolute peak / file size, and the time ratio baseline / ours.

    python tools/bench_load.py              # full size
    python tools/bench_load.py --scale 0.1  # a tenth of the params, for a quick look
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

_WRITE = r"""
import sys, numpy as np
sys.path.insert(0, {root!r})
from caffe_import.io import write_weights
from caffe_import.net import CaffeNet
from fcn_repro import zoo
net = zoo.get("voc-fcn8s").deploy_net()
if {scale} < 1:  # narrow the VGG trunk and fc6/fc7 (score layers keep 21 classes)
    for lp in net.layer:
        if lp.type == "Convolution" and not lp.name.startswith("score"):
            lp.convolution_param.num_output = max(1, int(lp.convolution_param.num_output * {scale}))
shapes = CaffeNet(net).params  # Caffe's blob shapes for this net
rng = np.random.default_rng(0)
weights = {{name: [rng.standard_normal(tuple(b.shape), dtype=np.float32) * np.float32(0.01)
               for b in blobs] for name, blobs in shapes.items()}}
del shapes
open({net_path!r}, "w").write(str(net))
write_weights({path!r}, net, weights)
"""

_CHILD = r"""
import sys, time, json, resource
sys.path.insert(0, {root!r})
def rss(key):
    try:
        for line in open("/proc/self/status"):
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
import numpy as np, torch
from caffe_import.net import CaffeNet
from caffe_import.io import read_net
net_param = read_net({net_path!r})
base = rss("VmRSS")
t0 = time.perf_counter()
if {mode!r} == "ours":
    net = CaffeNet(net_param, weights={path!r})
else:
    from caffe_import.proto import caffe_pb2
    msg = caffe_pb2.NetParameter()
    with open({path!r}, "rb") as f:
        msg.ParseFromString(f.read())
    mapping = {{}}
    for lp in msg.layer:
        if len(lp.blobs):
            mapping[lp.name] = [np.array(b.data, dtype=np.float32).reshape(tuple(b.shape.dim))
                                for b in lp.blobs]
    del msg
    net = CaffeNet(net_param, weights=mapping)
dt = time.perf_counter() - t0
n = sum(p.numel() for p in net.parameters())
print(json.dumps({{"base": base, "peak": rss("VmHWM"), "time": dt, "params": n}}))
"""


def run(code: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    if out.returncode != 0:
        raise SystemExit(f"child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--scale", type=float, default=1.0, help="fraction of the widths (quick runs)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        path, net_path = os.path.join(tmp, "fcn8s.caffemodel"), os.path.join(tmp, "deploy.prototxt")
        fmt = dict(root=str(ROOT), scale=args.scale, path=path, net_path=net_path)
        subprocess.run([sys.executable, "-c", _WRITE.format(**fmt)], check=True)
        size = os.path.getsize(path)
        ours = run(_CHILD.format(mode="ours", **fmt))
        base = run(_CHILD.format(mode="protobuf", **fmt))
    print(f"file: {size / 1e6:.1f} MB, {ours['params'] / 1e6:.1f}M params (FCN-8s VGG16, random weights)")
    for name, r in (("ours (wire reader + chunked copy)", ours), ("baseline (protobuf parse)", base)):
        print(f"{name:<34}: read+build {r['time']:6.2f} s, peak RSS above imports "
              f"{(r['peak'] - r['base']) / size:5.2f} x file, absolute peak {r['peak'] / size:5.2f} x file")
    print(f"speedup (baseline time / ours): {base['time'] / ours['time']:.1f}")
    print(f"peak_rss_above_imports / file_size (ours): {(ours['peak'] - ours['base']) / size:.3f}  "
          f"(target <= 1.2: one copy of the weights)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
