#!/usr/bin/env python3
"""Weight-reading benchmark: our wire-level reader against protobuf's full parse.

Writes a full-size FCN-8s VGG16 caffemodel (134M float32 params, about 538 MB, random
values) with our writer into a temp dir, then, in one run, reads it in fresh subprocesses:

* ours: ``caffe_import.read_weights(path)`` (blobs are copy-on-write views of a memory map,
  so reading costs only the walk over the framing; pages load as the values are used);
* baseline: ``NetParameter.ParseFromString(open(path).read())`` then ``np.array(blob.data)``
  for every blob (what pycaffe-free scripts do today).

Each child then sums every value once (so every page of ours is loaded too) and reports
the read time, the time of that pass, and its peak RSS after it: ``VmHWM`` from
``/proc/self/status`` where there is one (the high-water mark of the child's own address
space, mapped file pages it touched included), else ``getrusage(RUSAGE_SELF).ru_maxrss``.
The model is written by a child too, so no reader inherits a big parent's RSS through fork
(Linux keeps ``ru_maxrss`` across fork + exec).

Prints ``speedup`` (baseline read time / ours), the same ratio for read + one pass over
every value (the fair comparison when a user needs every value), and
``peak_rss / file_size`` for ours (targets: speedup >= 8, peak RSS <= 1.2 x file size).

    python tools/bench_read.py              # full size
    python tools/bench_read.py --scale 0.1  # a tenth of the params, for a quick look
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
sys.path.insert(0, str(ROOT))


def fcn8s_shapes(num_classes: int = 21) -> list[tuple[str, list[tuple[int, ...]]]]:
    """Param shapes of the release's VGG16 FCN-8s (PASCAL VOC, 21 classes)."""
    layers = []
    c_in = 3
    for block, convs, width in [(1, 2, 64), (2, 2, 128), (3, 3, 256), (4, 3, 512), (5, 3, 512)]:
        for i in range(1, convs + 1):
            layers.append((f"conv{block}_{i}", [(width, c_in, 3, 3), (width,)]))
            c_in = width
    k = num_classes
    layers += [
        ("fc6", [(4096, 512, 7, 7), (4096,)]), ("fc7", [(4096, 4096, 1, 1), (4096,)]),
        ("score_fr", [(k, 4096, 1, 1), (k,)]), ("upscore2", [(k, k, 4, 4)]),
        ("score_pool4", [(k, 512, 1, 1), (k,)]), ("upscore_pool4", [(k, k, 4, 4)]),
        ("score_pool3", [(k, 256, 1, 1), (k,)]), ("upscore8", [(k, k, 16, 16)]),
    ]
    return layers


def scaled(shape: tuple[int, ...], scale: float) -> tuple[int, ...]:
    if scale >= 1 or len(shape) < 2:
        return shape
    return (max(1, int(shape[0] * scale)),) + shape[1:]


PEAK_RSS = """
def peak_rss():
    try:
        for line in open("/proc/self/status"):
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    import resource
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
"""

CHILD_OURS = PEAK_RSS + """
import sys, time, json
import numpy as np
sys.path.insert(0, {root!r})
from caffe_import import read_weights
t = time.perf_counter()
w = read_weights({path!r})
dt = time.perf_counter() - t
t = time.perf_counter()
total = sum(float(a.sum(dtype=np.float64)) for blobs in w.values() for a in blobs)
touch = time.perf_counter() - t
n = sum(a.size for blobs in w.values() for a in blobs)
print(json.dumps({{"seconds": dt, "touch": touch, "sum": total, "params": n,
                  "rss": peak_rss()}}))
"""

CHILD_WRITE = """
import sys, time, json
import numpy as np
sys.path.insert(0, {root!r})
sys.path.insert(0, {tools!r})
from bench_read import fcn8s_shapes, scaled
from caffe_import import write_weights
rng = np.random.default_rng(0)
weights = {{name: [rng.standard_normal(scaled(s, {scale!r}), dtype=np.float32) * 0.01
               for s in shapes] for name, shapes in fcn8s_shapes()}}
t = time.perf_counter()
write_weights({path!r}, None, weights)
dt = time.perf_counter() - t
print(json.dumps({{"seconds": dt, "params": sum(a.size for b in weights.values() for a in b),
                  "rss": 0}}))
"""

CHILD_BASELINE = PEAK_RSS + """
import sys, time, json
import numpy as np
sys.path.insert(0, {root!r})
from caffe_import.proto import caffe_pb2
t = time.perf_counter()
with open({path!r}, "rb") as f:
    net = caffe_pb2.NetParameter.FromString(f.read())
w = {{l.name: [np.array(b.data, dtype=np.float32).reshape(tuple(b.shape.dim)) for b in l.blobs]
     for l in net.layer if len(l.blobs)}}
dt = time.perf_counter() - t
t = time.perf_counter()
total = sum(float(a.sum(dtype=np.float64)) for blobs in w.values() for a in blobs)
touch = time.perf_counter() - t
n = sum(a.size for blobs in w.values() for a in blobs)
print(json.dumps({{"seconds": dt, "touch": touch, "sum": total, "params": n,
                  "rss": peak_rss()}}))
"""


def run_child(code: str) -> dict:
    env = dict(os.environ, OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env)
    if out.returncode != 0:
        raise SystemExit(f"benchmark child failed:\n{out.stderr}")
    return json.loads(out.stdout.strip().splitlines()[-1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scale", type=float, default=1.0,
                        help="fraction of output channels to keep (1.0 = full FCN-8s)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each reader, each in a fresh child (fastest kept: the "
                             "machine may be shared)")
    parser.add_argument("--dir", default=None, help="where to write the temp model")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = os.path.join(tmp, "fcn8s-heavy-pascal.caffemodel")
        written = run_child(CHILD_WRITE.format(root=str(ROOT), tools=str(ROOT / "tools"),
                                               scale=args.scale, path=path))
        n_params, write_s = written["params"], written["seconds"]
        size = os.path.getsize(path)
        print(f"model: {n_params / 1e6:.1f}M params, {size / 1e6:.1f} MB, written in {write_s:.2f} s")
        ours = min((run_child(CHILD_OURS.format(root=str(ROOT), path=path))
                    for _ in range(max(1, args.repeat))), key=lambda r: r["seconds"])
        base = min((run_child(CHILD_BASELINE.format(root=str(ROOT), path=path))
                    for _ in range(max(1, args.repeat))), key=lambda r: r["seconds"])
    assert ours["params"] == base["params"] == n_params
    assert abs(ours["sum"] - base["sum"]) <= 1e-6 * max(1.0, abs(base["sum"]))
    speedup = base["seconds"] / ours["seconds"]
    ours_all = ours["seconds"] + ours["touch"]
    base_all = base["seconds"] + base["touch"]
    print(f"ours:     read {ours['seconds']:.3f} s (+ {ours['touch']:.3f} s to touch every "
          f"value), peak RSS {ours['rss'] / 1e6:.0f} MB")
    print(f"baseline: read {base['seconds']:.3f} s (+ {base['touch']:.3f} s to touch every "
          f"value), peak RSS {base['rss'] / 1e6:.0f} MB (ParseFromString + np.array(blob.data))")
    print(f"speedup: {speedup:.1f}x (target >= 8)")
    print(f"speedup including one pass over every value: {base_all / ours_all:.1f}x")
    print(f"peak_rss / file_size: {ours['rss'] / size:.3f} (target <= 1.2; after every page "
          f"was touched); baseline {base['rss'] / size:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
