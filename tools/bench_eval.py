#!/usr/bin/env python3
"""Evaluation-pipeline benchmark: ``fcn_repro.evaluate.evaluate_net`` against the naive loop.

The baseline is the loop of the release's ``score.py`` as people port it to PyTorch: no
workers, one image at a time, ``out[0].argmax(0).cpu().numpy()`` per image and a numpy
``bincount`` confusion matrix on the host. The optimised pipeline is ``evaluate_net``:
DataLoader workers, pinned memory and ``non_blocking`` copies on CUDA, argmax and confusion
matrix on the device, one host read at the end.

On a synthetic VOC-layout split (``fcn_repro.data.synthetic.make_dataset`` in a temp folder,
images resized to ``--min-size``..``--max-size`` px) it times, one line each:

* decode + preprocess: the dataset's ``__getitem__`` alone;
* forward alone: the net on images already on the device;
* argmax alone and metrics alone (confusion update + compute), each ``evaluate_net``'s way on
  the device and the naive way on the host;
* the full pipeline: ``evaluate_net`` (``--workers`` and 0 workers) and the naive loop;
* host reads per image in each loop outside the net's forward (``.item()``, ``.cpu()``,
  ``.numpy()``, ``.tolist()``, ``bool()``/``int()``/``float()`` of a tensor): 0 for
  ``evaluate_net``, so it never waits on the GPU per image;

and checks that every loop gives the same confusion matrix (workers change nothing). The last
line is the speedup of the full pipeline over the baseline.

``--busy N`` measures something else: ``evaluate_net`` (CPU, 0 workers) while N other processes
spin on the cores, with torch's own OpenMP defaults, with one thread, and with the defaults both
commands set (:mod:`caffe_import.threads`: passive waiting, the usable cores), each in a fresh
process (the waiting policy is fixed when torch loads), best of ``--repeat`` runs each. The
last line is the ratio.

    python tools/bench_eval.py                          # bundled narrow FCN-8s, CPU
    python tools/bench_eval.py --model voc-fcn8s --device cuda   # full width, random weights
    python tools/bench_eval.py --busy 1 --images 40 --min-size 20 --max-size 48   # a shared CPU
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any, Callable, Iterator

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from caffe_import import threads  # noqa: E402

ORIGINAL_ENV = dict(os.environ)
if __name__ == "__main__" and "--busy-child" not in sys.argv:  # a child runs as its parent says
    threads.configure_threads()  # as both commands do, before torch loads OpenMP

import numpy as np  # noqa: E402
import torch  # noqa: E402

NARROW = Path(__file__).resolve().parents[1] / "fcn_repro" / "assets" / "voc_fcn8s_narrow"
HOST_READS = ("item", "tolist", "cpu", "numpy", "__bool__", "__int__", "__float__")


# --------------------------------------------------------------------------------------
# data and net
# --------------------------------------------------------------------------------------

def make_voc(root: Path, n: int, min_size: int, max_size: int, seed: int = 0) -> Any:
    """A synthetic VOC ``seg11valid`` split of ``n`` images ``min_size``..``max_size`` px a side.

    ``make_dataset`` draws small sizes (tests want them); its size draw is swapped for this
    one while it writes (it has no size argument)."""
    from fcn_repro.data import VOCSegmentation
    from fcn_repro.data import synthetic

    def size(rng: np.random.Generator) -> tuple[int, int]:
        return int(rng.integers(min_size, max_size + 1)), int(rng.integers(min_size, max_size + 1))

    original = synthetic._size
    synthetic._size = size
    try:
        synthetic.make_dataset("voc", root, n=n, seed=seed)
    finally:
        synthetic._size = original
    return VOCSegmentation(root, "seg11valid")


def build_net(model: str | None, device: torch.device) -> Any:
    """The bundled narrow FCN-8s with its weights (``model`` None), or a zoo model's deploy net
    with Caffe's filler initialisation (random weights: the timing does not depend on them)."""
    from caffe_import.net import CaffeNet
    if model is None:
        net = CaffeNet(str(NARROW / "net.prototxt"), weights=str(NARROW / "weights.caffemodel"))
    else:
        from fcn_repro import zoo
        torch.manual_seed(0)
        net = CaffeNet(zoo.get(model).deploy_net(), phase="test")
    return net.to(device).eval()


# --------------------------------------------------------------------------------------
# the two loops
# --------------------------------------------------------------------------------------

def naive_confusion(net: Any, dataset: Any, device: str | torch.device = "cpu", head: str = "score",
                    num_classes: int = 21) -> np.ndarray:
    """score.py's loop: per image forward, the score blob to the host (``.cpu().numpy()``),
    numpy ``argmax(0)`` and ``bincount``."""
    n = num_classes
    hist = np.zeros((n, n), dtype=np.int64)
    device = torch.device(device)
    with torch.no_grad():
        for i in range(len(dataset)):
            image, label = dataset[i]
            out = net.forward(outputs=[head], data=image.unsqueeze(0).to(device))
            pred = out[head][0].cpu().numpy().argmax(0)  # score.py: the blob on the host
            gt = label.numpy()
            k = (gt >= 0) & (gt < n)
            hist += np.bincount(n * gt[k].astype(int) + pred[k], minlength=n * n).reshape(n, n)
    return hist


def fast_confusion(net: Any, dataset: Any, device: str | torch.device = "cpu", head: str = "score",
                   workers: int = 0) -> np.ndarray:
    """``evaluate_net``'s confusion matrix of ``head``."""
    from fcn_repro.evaluate import evaluate_net
    res = evaluate_net(net, dataset, device=device, workers=workers, progress=False)
    return np.asarray(res["heads"][head]["confusion_matrix"], dtype=np.int64)


# --------------------------------------------------------------------------------------
# measuring
# --------------------------------------------------------------------------------------

def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(fn: Callable[[], Any], device: torch.device) -> tuple[float, Any]:
    sync(device)
    t0 = time.perf_counter()
    out = fn()
    sync(device)
    return time.perf_counter() - t0, out


class HostReads:
    """Counts tensor -> host reads made while active, except inside the wrapped net's forward
    (what a layer does is the net's business; this measures the evaluation loop)."""

    def __init__(self) -> None:
        self.count = 0
        self.paused = 0

    @contextlib.contextmanager
    def active(self) -> Iterator["HostReads"]:
        saved = {name: getattr(torch.Tensor, name) for name in HOST_READS}

        def counting(name: str, method: Callable) -> Callable:
            def wrapper(self_t, *args, **kwargs):
                if not self.paused:
                    self.count += 1
                return method(self_t, *args, **kwargs)
            return wrapper

        for name, method in saved.items():
            setattr(torch.Tensor, name, counting(name, method))
        try:
            yield self
        finally:
            for name, method in saved.items():
                setattr(torch.Tensor, name, method)

    def wrap(self, net: Any) -> Any:
        counter = self

        class Uncounted:
            """The net with its forward excluded from the count."""

            def __getattr__(self, name: str) -> Any:
                return getattr(net, name)

            def forward(self, *args: Any, **kwargs: Any) -> Any:
                counter.paused += 1
                try:
                    return net.forward(*args, **kwargs)
                finally:
                    counter.paused -= 1

        return Uncounted()


def reads_per_image(loop: Callable[[Any, Any], Any], net: Any, dataset: Any) -> float:
    """Host reads per image of ``loop(net, dataset)`` outside the forward: the difference
    between a run over all images and one over the first, per extra image (the reads at the
    start and end of a run do not scale with the split)."""
    from torch.utils.data import Subset
    counts = []
    for ds in (Subset(dataset, [0]), dataset):
        counter = HostReads()
        with counter.active():
            loop(counter.wrap(net), _keep_attrs(ds, dataset))
        counts.append(counter.count)
    return (counts[1] - counts[0]) / max(1, len(dataset) - 1)


def syncs_per_image(run_all: Callable[[], Any], run_one: Callable[[], Any], n: int) -> float:
    """CUDA synchronisations per extra image that ``torch.cuda.set_sync_debug_mode`` reports
    (forward included: a layer that reads a value back shows here too)."""
    import warnings
    counts = []
    for run in (run_one, run_all):
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            torch.cuda.set_sync_debug_mode("warn")
            try:
                run()
            finally:
                torch.cuda.set_sync_debug_mode("default")
        counts.append(sum("synchroniz" in str(w.message) for w in caught))
    return (counts[1] - counts[0]) / max(1, n - 1)


def _keep_attrs(subset: Any, dataset: Any) -> Any:
    """A Subset that still answers the dataset's class attributes (heads, classes, ids)."""
    if subset is dataset:
        return dataset
    for name in ("score_heads", "num_classes", "exclude_classes", "class_names", "name", "split"):
        if hasattr(dataset, name):
            setattr(subset, name, getattr(dataset, name))
    subset.ids = [dataset.ids[i] for i in subset.indices]
    return subset


# --------------------------------------------------------------------------------------
# a shared CPU: torch's OpenMP defaults vs caffe_import.threads', other processes spinning
# --------------------------------------------------------------------------------------

def thread_envs(environ: dict[str, str]) -> dict[str, dict[str, str]]:
    """``environ`` without any thread setting (torch's defaults), with one thread (the usual
    workaround) and with the commands' settings."""
    bare = {k: v for k, v in environ.items()
            if k not in threads.WAIT_VARIABLES and k != "OMP_NUM_THREADS"}
    return {"torch defaults": bare, "OMP_NUM_THREADS=1": {**bare, "OMP_NUM_THREADS": "1"},
            "caffe_import.threads": {**bare, **threads.thread_settings(bare)}}


@contextlib.contextmanager
def spinning(n: int) -> Iterator[list[subprocess.Popen]]:
    """``n`` processes that keep a core each busy, ended on exit."""
    procs = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(n)]
    try:
        yield procs
    finally:
        for proc in procs:
            proc.kill()
        for proc in procs:
            proc.wait()


def child_eval(root: str, repeat: int) -> dict[str, Any]:
    """What a ``--busy`` child process measures: best of ``repeat`` ``evaluate_net`` runs."""
    from fcn_repro.data import VOCSegmentation
    from fcn_repro.evaluate import evaluate_net
    ds = VOCSegmentation(root, "seg11valid")
    net = build_net(None, torch.device("cpu"))
    evaluate_net(net, ds, workers=0, progress=False)  # warm-up
    secs = min(timed(lambda: evaluate_net(net, ds, workers=0, progress=False), torch.device("cpu"))[0]
               for _ in range(repeat))
    return {"seconds": secs, "images": len(ds), "threads": torch.get_num_threads(),
            "wait_policy": os.environ.get("OMP_WAIT_POLICY", "unset")}


def busy_comparison(args: argparse.Namespace) -> int:
    """``--busy N``: the two thread settings, each in a fresh process, N spinners running."""
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        make_voc(Path(tmp) / "voc", args.images, args.min_size, args.max_size, args.seed)
        runs = {}
        load = os.getloadavg()[0]
        with spinning(args.busy):
            for label_, env in thread_envs(ORIGINAL_ENV).items():
                out = subprocess.run([sys.executable, __file__, "--busy-child", str(Path(tmp) / "voc"),
                                      "--repeat", str(args.repeat)], env=env, capture_output=True,
                                     text=True, check=True)
                runs[label_] = r = json.loads(out.stdout.splitlines()[-1])
                line(f"{label_}: {r['threads']} threads, {r['wait_policy']}", r["seconds"],
                     r["images"], f"  {r['seconds']:.2f} s")
    default, one, ours = (runs[k]["seconds"] for k in runs)
    print(f"summary: {args.busy} busy process(es) on {os.cpu_count()} CPUs, load before "
          f"{load:.1f}: torch defaults {default:.2f} s, one thread {one:.2f} s, "
          f"caffe_import.threads {ours:.2f} s: {default / ours:.1f}x faster than the defaults, "
          f"{one / ours:.1f}x than one thread", flush=True)
    return 0


def line(label: str, seconds: float, images: int, extra: str = "") -> float:
    rate = images / seconds if seconds > 0 else float("inf")
    print(f"{label:<38} {rate:9.1f} images/s  {1000 * seconds / images:8.2f} ms/image{extra}", flush=True)
    return rate


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None,
                    help="zoo model with random weights (e.g. voc-fcn8s); default: the bundled narrow FCN-8s")
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--images", type=int, default=48)
    ap.add_argument("--min-size", type=int, default=200)
    ap.add_argument("--max-size", type=int, default=375)
    ap.add_argument("--workers", type=int, default=min(4, os.cpu_count() or 1))
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--repeat", type=int, default=2, help="full pipelines: best of this many runs")
    ap.add_argument("--busy", type=int, default=None, metavar="N",
                    help="compare thread settings with N spinning processes (see the module doc)")
    ap.add_argument("--busy-child", metavar="ROOT", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if torch.device(args.device).type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but CUDA is not available")
    return args


def time_parts(net: Any, ds: Any, device: torch.device) -> dict[str, float]:
    """Decode, forward, argmax and metrics each alone (argmax and metrics also the naive way);
    returns the seconds of the evaluate_net way of each."""
    from fcn_repro.metrics import ConfusionMatrix, predicted_classes, scores_from_hist
    n = len(ds)
    secs, items = timed(lambda: [ds[i] for i in range(n)], device)
    parts = {"decode": secs}
    line("decode+preprocess (__getitem__)", secs, n)

    on_dev = [(x[None].to(device), y[None].to(device)) for x, y in items]  # inputs already there
    with torch.no_grad():
        secs, scores = timed(lambda: [net.forward(outputs=["score"], data=x)["score"] for x, _ in on_dev],
                             device)
    parts["forward"] = secs
    line("forward alone", secs, n)

    secs, preds = timed(lambda: [predicted_classes(s) for s in scores], device)
    parts["argmax"] = secs
    line("argmax alone (device max(1).indices)", secs, n)
    secs, _ = timed(lambda: [s[0].cpu().numpy().argmax(0) for s in scores], device)
    line("argmax alone (naive .cpu().numpy())", secs, n)
    scores = []  # free the score maps

    def device_metrics() -> dict:
        m = ConfusionMatrix(21, device)
        for p, (_, y) in zip(preds, on_dev):
            m.update(p, y)
        return m.compute()

    def numpy_metrics() -> dict:
        hist = np.zeros((21, 21), dtype=np.int64)
        for p, (_, y) in zip(preds, on_dev):
            pred, gt = p[0].cpu().numpy(), y[0].cpu().numpy()
            k = (gt >= 0) & (gt < 21)
            hist += np.bincount(21 * gt[k] + pred[k], minlength=21 * 21).reshape(21, 21)
        return scores_from_hist(hist)

    secs, _ = timed(device_metrics, device)
    parts["metrics"] = secs
    line("metrics alone (device confusion)", secs, n)
    secs, _ = timed(numpy_metrics, device)
    line("metrics alone (naive numpy bincount)", secs, n)
    return parts


def time_pipelines(net: Any, ds: Any, device: torch.device, workers: int,
                   repeat: int) -> tuple[dict[int, float], float, dict[str, np.ndarray]]:
    """evaluate_net with ``workers`` and 0 workers, and the naive loop, each best of ``repeat``:
    (evaluate_net images/s by workers, naive images/s, every loop's confusion matrix)."""
    from fcn_repro.evaluate import evaluate_net

    def best_of(fn: Callable[[], Any]) -> tuple[float, Any]:
        runs = [timed(fn, device) for _ in range(repeat)]
        return min(r[0] for r in runs), runs[-1][1]

    rates, hists = {}, {}
    for label_, w in ((f"full pipeline evaluate_net, {workers} workers", workers),
                      ("full pipeline evaluate_net, 0 workers", 0)):
        secs, res = best_of(lambda: evaluate_net(net, ds, device=device, workers=w, progress=False))
        rates[w] = line(label_, secs, len(ds))
        hists[label_] = np.asarray(res["heads"]["score"]["confusion_matrix"])
    secs, hists["naive"] = best_of(lambda: naive_confusion(net, ds, device))
    return rates, line("full pipeline naive (score.py loop)", secs, len(ds)), hists


def report_reads(net: Any, ds: Any, device: torch.device) -> None:
    """Host reads per image outside the forward, and on CUDA synchronisations per image."""
    from fcn_repro.evaluate import evaluate_net
    sub = _keep_attrs(torch.utils.data.Subset(ds, list(range(min(len(ds), 6)))), ds)
    fast_reads = reads_per_image(lambda m, d: evaluate_net(m, d, device=device, progress=False), net, sub)
    naive_reads = reads_per_image(lambda m, d: naive_confusion(m, d, device), net, sub)
    print(f"{'host reads per image outside forward':<38} evaluate_net {fast_reads:.2f}, "
          f"naive {naive_reads:.2f}", flush=True)
    if device.type == "cuda":
        one = _keep_attrs(torch.utils.data.Subset(sub, [0]), sub)
        syncs = syncs_per_image(lambda: evaluate_net(net, sub, device=device, progress=False),
                                lambda: evaluate_net(net, one, device=device, progress=False), len(sub))
        print(f"{'CUDA syncs per image (debug mode)':<38} evaluate_net {syncs:.2f} "
              "(the net's forward included)", flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.busy_child:
        print(json.dumps(child_eval(args.busy_child, args.repeat)))
        return 0
    if args.busy is not None:
        return busy_comparison(args)
    device = torch.device(args.device)
    with tempfile.TemporaryDirectory(prefix="bench_eval_") as tmp:
        t0 = time.perf_counter()
        ds = make_voc(Path(tmp) / "voc", args.images, args.min_size, args.max_size, args.seed)
        net = build_net(args.model, device)
        n = len(ds)
        print(f"{args.model or 'voc_fcn8s_narrow (bundled)'} on {n} synthetic VOC images "
              f"{args.min_size}-{args.max_size} px, device {device}, {torch.get_num_threads()} threads, "
              f"{args.workers} workers (setup {time.perf_counter() - t0:.1f} s)", flush=True)
        with torch.no_grad():  # warm-up: allocator, kernels, page cache
            net.forward(outputs=["score"], data=ds[0][0][None].to(device))

        parts = time_parts(net, ds, device)
        rates, naive_rate, hists = time_pipelines(net, ds, device, args.workers, args.repeat)
        total = sum(parts.values())
        print(f"{'sum of the parts (evaluate_net way)':<38} {n / total:9.1f} images/s  "
              f"{1000 * total / n:8.2f} ms/image: "
              + ", ".join(f"{k} {100 * v / total:.0f}%" for k, v in parts.items()), flush=True)
        hist = hists["naive"]
        same = all(np.array_equal(h, hist) for h in hists.values())
        print(f"{'confusion matrices identical':<38} {'yes' if same else 'NO'} "
              f"({len(hists)} loops, {int(hist.sum())} pixels)", flush=True)
        report_reads(net, ds, device)

        best = max(rates.values())
        print(f"summary: evaluate_net {best:.1f} images/s vs naive {naive_rate:.1f} images/s: "
              f"{best / naive_rate:.2f}x (workers {args.workers}: {rates[args.workers] / naive_rate:.2f}x, "
              f"0 workers: {rates[0] / naive_rate:.2f}x); matrices identical: {same}", flush=True)
        return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
