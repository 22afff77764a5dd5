"""Training the release's models with Caffe's solver: ``solve.py`` as a library.

The release trained each model with its ``solver.prototxt`` (batch 1, fixed lr, momentum
0.99, unnormalized loss - "heavy learning"; FCN-AlexNet: ``iter_size`` 20 and a normalized
loss), initialised by net surgery from the previous stage (ILSVRC classifier -> 32s -> 16s ->
8s) with bilinear deconvolutions, and scored the val split every 4000 iterations. This
module does the same with :class:`caffe_import.solver.Solver`:

* the zoo's train/val nets read images through Python data layers; :func:`feed_net` swaps
  those for ``Input`` layers that are fed from ``fcn_repro.data`` datasets (labels as float
  ``1 x 1 x H x W`` blobs, as Caffe's data layers hand them to ``SoftmaxWithLoss``);
* the training order is a seeded shuffle per epoch, a function of the iteration number, so a
  resumed run sees the images a straight run would have;
* snapshots (``<out>/snapshots/train_iter_<N>.caffemodel`` + solver state) are atomic, a
  Ctrl-C snapshots before exiting, and ``resume=True`` continues from the newest one;
* ``<out>/log.csv`` and ``<out>/log.json`` hold loss, lr and val scores, ``<out>/curves.png``
  plots them.
"""
from __future__ import annotations

import csv
import io
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Sequence

import numpy as np
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.proto import caffe_pb2
from caffe_import.io.atomic import atomic_write_bytes

__all__ = ["feed_net", "item_to_blobs", "evaluate", "train", "TrainResult", "latest_snapshot",
           "shuffled_index", "initialize"]

#: layer types that read data themselves (replaced by ``Input`` for training here)
DATA_LAYER_TYPES = ("Python", "Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData")
SNAPSHOT_RE = re.compile(r"_iter_(\d+)\.solverstate\.safetensors$")


# --------------------------------------------------------------------------------------
# nets fed from datasets
# --------------------------------------------------------------------------------------

def data_tops(net: caffe_pb2.NetParameter) -> list[str]:
    """Tops of the net's data layers (layers of a data type with no bottoms), in order."""
    return [t for l in net.layer if l.type in DATA_LAYER_TYPES and not l.bottom for t in l.top]


def feed_net(net: caffe_pb2.NetParameter, shapes: Mapping[str, Sequence[int]]) -> caffe_pb2.NetParameter:
    """A copy of ``net`` whose data layers are ``Input`` layers with the given top shapes.

    Each data layer becomes one ``Input`` layer with the same name and tops (its include /
    exclude rules kept), so nothing downstream changes. The shapes are only the first ones;
    a CaffeNet reshapes on every forward.
    """
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    del out.layer[:]
    for layer in net.layer:
        if layer.type in DATA_LAYER_TYPES and not layer.bottom:
            new = out.layer.add()
            new.name = layer.name
            new.type = "Input"
            new.include.extend(layer.include)
            new.exclude.extend(layer.exclude)
            for top in layer.top:
                if top not in shapes:
                    raise CaffeFormatError(f"no data for top '{top}' of the data layer (the dataset "
                                           f"gives {', '.join(shapes)})", layer=layer.name)
                new.top.append(top)
                new.input_param.shape.add().dim.extend(int(d) for d in shapes[top])
        else:
            out.layer.add().CopyFrom(layer)
    return out


def item_to_blobs(item: tuple[Any, Any], input_names: Sequence[str],
                  label_names: Sequence[str]) -> dict[str, torch.Tensor]:
    """One dataset item ``(inputs, labels)`` as batch-1 blobs keyed by the net's top names.

    Images ``C x H x W`` -> ``1 x C x H x W``; labels ``H x W`` (int64) -> float
    ``1 x 1 x H x W`` (Caffe's label blobs are float). Dict items are keyed by blob names.
    """
    inputs, labels = item
    out: dict[str, torch.Tensor] = {}
    if not isinstance(inputs, Mapping):
        inputs = {input_names[0]: inputs}
    if not isinstance(labels, Mapping):
        labels = {label_names[0]: labels}
    for name, x in inputs.items():
        t = torch.as_tensor(x, dtype=torch.float32)
        out[name] = t.unsqueeze(0) if t.dim() == 3 else t
    for name, y in labels.items():
        t = torch.as_tensor(y).to(torch.float32)
        while t.dim() < 4:
            t = t.unsqueeze(0)
        out[name] = t
    return out


def shuffled_index(pass_index: int, n: int, seed: int, shuffle: bool = True) -> int:
    """Dataset index of forward pass ``pass_index``: a seeded permutation per epoch."""
    if n < 1:
        raise ValueError("empty training set")
    epoch, pos = divmod(int(pass_index), n)
    if not shuffle:
        return pos
    g = torch.Generator().manual_seed(int(seed) * 100003 + epoch)
    return int(torch.randperm(n, generator=g)[pos])


# --------------------------------------------------------------------------------------
# evaluation
# --------------------------------------------------------------------------------------

def score_heads(dataset: Any, blobs: Sequence[str]) -> dict[str, tuple[str | None, int]]:
    """Score blob -> (label key, number of classes), from the dataset's class attributes.

    ``blobs`` are the net's blob names; a dataset head missing from the net is an error."""
    heads = dict(getattr(dataset, "score_heads", {"score": None}))
    ncls = dict(getattr(dataset, "num_classes", {}))
    out = {}
    for blob, label in heads.items():
        if blob not in blobs:
            raise CaffeFormatError(f"the net has no score blob '{blob}' that dataset "
                                   f"{type(dataset).__name__} is scored on")
        if label not in ncls:
            raise CaffeFormatError(f"dataset {type(dataset).__name__} gives no class count for {label!r}")
        out[blob] = (label, int(ncls[label]))
    return out


def evaluate(net: Any, dataset: Any, input_names: Sequence[str], label_names: Sequence[str],
             heads: Mapping[str, tuple[str | None, int]], indices: Iterable[int] | None = None,
             device: str | torch.device | None = None, all_reduce: bool = False,
             exclude: Mapping[str | None, Sequence[int]] | None = None) -> dict[str, dict[str, Any]]:
    """Confusion-matrix scores of ``net`` on ``dataset`` (``indices``: a shard, default all),
    in the form the training log keeps: ``{score blob: fcn_repro.metrics scores}`` plus
    ``"loss"`` (mean of the net's loss over the images; NaN for a net without loss tops).

    The loop is :func:`fcn_repro.evaluate.evaluate_net`; the labels are fed to the net as
    its ``label_names`` blobs (Caffe's val nets compute their loss from them). With
    ``all_reduce`` the matrices and loss sums of every rank are summed before scoring, so a
    sharded evaluation scores exactly like one process.
    """
    from fcn_repro.evaluate import evaluate_net, scores_by_head
    result = evaluate_net(net, dataset, device=device, heads=dict(heads), progress=False,
                          indices=None if indices is None else list(indices), all_reduce=all_reduce,
                          input_names=input_names, label_names=label_names,
                          exclude=dict(exclude or {}))
    return scores_by_head(result)


# --------------------------------------------------------------------------------------
# logs
# --------------------------------------------------------------------------------------

def _atomic_write_bytes(path: Path, data: bytes) -> None:
    atomic_write_bytes(path, data)


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.ndarray):
        return _jsonable(x.tolist())
    if isinstance(x, (np.floating, float)):
        return None if not math.isfinite(float(x)) else float(x)
    if isinstance(x, np.integer):
        return int(x)
    return x


class TrainLog:
    """Per-iteration records and val scores, saved as JSON + CSV + a plot (all atomic).

    Iteration numbers follow Caffe's log: a training row ``k`` is the forward/backward of
    iteration ``k`` (before its update, lr as used by it); val scores at ``k`` are taken after
    ``k`` updates, where Caffe prints "Iteration k, Testing net". A resumed run restarts the
    ``average_loss`` window, as Caffe's ``Step`` does."""

    CSV_FIELDS = ("iter", "loss", "smoothed_loss", "lr", "val_loss", "pixel_acc", "mean_acc",
                  "mean_iu", "fw_iu")

    def __init__(self, out: Path) -> None:
        self.out = out
        self.records: list[dict[str, Any]] = []
        self.evals: list[dict[str, Any]] = []

    def load(self, until_iter: int) -> None:
        """Read an earlier run's log, keeping what happened before iteration ``until_iter``."""
        path = self.out / "log.json"
        if path.is_file():
            data = json.loads(path.read_text())
            self.records = [r for r in data.get("train", []) if r["iter"] < until_iter]
            self.evals = [r for r in data.get("val", []) if r["iter"] <= until_iter]

    def save(self, meta: Mapping[str, Any]) -> None:
        payload = {"meta": meta, "train": self.records, "val": self.evals}
        _atomic_write_bytes(self.out / "log.json", json.dumps(_jsonable(payload), indent=1).encode())
        buf = io.StringIO()
        w = csv.DictWriter(buf, fieldnames=self.CSV_FIELDS, extrasaction="ignore")
        w.writeheader()
        evals = {e["iter"]: e for e in self.evals}
        for r in self.records:
            row = dict(r)
            row.update(evals.get(r["iter"], {}))
            w.writerow(row)
        for it in sorted(set(evals) - {r["iter"] for r in self.records}):
            w.writerow(evals[it])
        _atomic_write_bytes(self.out / "log.csv", buf.getvalue().encode())
        self.plot()

    def plot(self) -> None:
        import matplotlib
        matplotlib.use("Agg", force=False)
        import matplotlib.pyplot as plt
        fig, ax = plt.subplots(1, 2, figsize=(10, 4))
        if self.records:
            ax[0].plot([r["iter"] for r in self.records], [r["loss"] for r in self.records],
                       lw=0.5, alpha=0.5, label="loss")
            ax[0].plot([r["iter"] for r in self.records], [r["smoothed_loss"] for r in self.records],
                       label="smoothed")
        ax[0].set_xlabel("iteration")
        ax[0].set_title("training loss")
        ax[0].legend(loc="upper right")
        if self.evals:
            ax[1].plot([e["iter"] for e in self.evals], [e.get("mean_iu", float("nan")) for e in self.evals],
                       marker="o")
        ax[1].set_xlabel("iteration")
        ax[1].set_title("val mean IU")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        _atomic_write_bytes(self.out / "curves.png", buf.getvalue())


# --------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------

@dataclass
class TrainResult:
    out: Path
    iterations: int
    records: list[dict[str, Any]] = field(default_factory=list)
    evals: list[dict[str, Any]] = field(default_factory=list)
    snapshots: list[Path] = field(default_factory=list)
    surgery_log: list[str] = field(default_factory=list)


def latest_snapshot(folder: str | os.PathLike) -> Path | None:
    """The newest ``*_iter_<N>.solverstate.safetensors`` under ``folder`` (by N)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := SNAPSHOT_RE.search(p.name))]
    return max(found)[1] if found else None


def initialize(net: Any, init: str | os.PathLike | Mapping[str, Any] | None,
               log: Callable[[str], Any] | None = None) -> list[str]:
    """The release's surgery: transplant ``init`` (by layer name, coercing fc -> conv), then
    bilinear weights for every deconvolution whose name contains ``up``."""
    from fcn_repro.surgery import init_upsampling, transplant
    lines: list[str] = []
    if init is not None:
        lines += transplant(net, init, log=log)
    ups = [n for n, t in zip(net.layer_names, net.layer_types) if t == "Deconvolution" and "up" in n]
    if ups:
        init_upsampling(net, ups)
        lines += [f"bilinear {n}" for n in ups]
    return lines


def _label_names(spec_labels: Sequence[str] | None, tops: Sequence[str], item: tuple[Any, Any]) -> list[str]:
    labels = item[1]
    if isinstance(labels, Mapping):
        return list(labels)
    if spec_labels:
        return [spec_labels[0]]
    return [tops[-1]]


def train(train_net: caffe_pb2.NetParameter, solver_param: caffe_pb2.SolverParameter,
          train_set: Any, val_set: Any = None, *, val_net: caffe_pb2.NetParameter | None = None,
          out: str | os.PathLike = "train_out", init: Any = None, device: str | torch.device = "cpu",
          max_iter: int | None = None, resume: bool = False, eval_interval: int | None = None,
          eval_limit: int | None = None, snapshot_interval: int | None = None, seed: int = 1337,
          labels: Sequence[str] | None = None, progress: bool = True,
          model_name: str = "", wrap: Callable[[Any], Any] | None = None,
          rank: int = 0, world_size: int = 1) -> TrainResult:
    """Train ``train_net`` with ``solver_param`` on ``train_set``; score ``val_set`` periodically.

    ``eval_interval`` defaults to the solver's ``snapshot`` (the release scored after every
    4000 iterations); ``snapshot_interval`` overrides the solver's ``snapshot``. ``wrap(net)``
    may return a ``DistributedDataParallel`` wrapper (see :mod:`fcn_repro.distributed`);
    ``rank``/``world_size`` shard the training order and the evaluation, and only rank 0
    writes files.
    """
    from caffe_import.net import CaffeNet
    from caffe_import.solver import Solver

    out = Path(out)
    device = torch.device(device)
    solver_param = _copy(solver_param)
    if max_iter is not None:
        solver_param.max_iter = int(max_iter)
    if snapshot_interval is not None:
        solver_param.snapshot = int(snapshot_interval)
    snap_every = int(solver_param.snapshot)
    solver_param.snapshot = 0  # snapshots are taken here (rank 0 only, with the logs)
    solver_param.test_interval = 0
    eval_every = int(eval_interval if eval_interval is not None else (snap_every or 4000))
    main = rank == 0

    if len(train_set) == 0:
        raise CaffeFormatError("the training set is empty")
    first = train_set[0]
    tops = data_tops(train_net)
    label_names = _label_names(labels, tops, first)
    input_names = [t for t in tops if t not in label_names] or ["data"]
    sample = item_to_blobs(first, input_names, label_names)
    # fillers draw from torch's generator: seed it (Caffe: random_seed) so runs repeat
    torch.manual_seed(int(solver_param.random_seed) if solver_param.random_seed >= 0 else seed)
    net = CaffeNet(feed_net(train_net, {k: tuple(v.shape) for k, v in sample.items()}), phase="train")
    net.to(device)
    surgery_log = initialize(net, init)  # every rank alike (DDP also broadcasts rank 0's)
    model = wrap(net) if wrap is not None else net

    n = len(train_set)

    def feed(pass_index: int) -> dict[str, torch.Tensor]:
        k = shuffled_index(pass_index * world_size + rank, n, seed)
        return item_to_blobs(train_set[k], input_names, label_names)

    log = TrainLog(out)
    solver = Solver(solver_param, net, feed=feed, model=model, device=device,
                    snapshot_prefix=out / "snapshots" / "train")
    meta = {"model": model_name, "solver": str(solver_param), "seed": seed, "world_size": world_size}
    result = TrainResult(out=out, iterations=0, surgery_log=surgery_log)
    if resume:
        state = latest_snapshot(out / "snapshots")
        if state is not None:
            solver.restore(state)
            log.load(solver.iter)

    vnet = None
    heads: dict[str, tuple[str | None, int]] = {}
    if val_set is not None and len(val_set):
        vsample = item_to_blobs(val_set[0], input_names, label_names)
        vparam = val_net if val_net is not None else train_net
        vnet = CaffeNet(feed_net(vparam, {k: tuple(v.shape) for k, v in vsample.items()}), phase="test")
        vnet.to(device)
        heads = score_heads(val_set, [t for l in vnet.net_param.layer for t in l.top])

    def run_eval() -> None:
        if vnet is None:
            return
        vnet.load_weights(net.weights())
        idx = list(range(len(val_set)))[: eval_limit or None]
        scores = evaluate(vnet, val_set, input_names, label_names, heads,
                          indices=idx[rank::world_size], device=device, all_reduce=world_size > 1,
                          exclude=getattr(val_set, "exclude_classes", None))  # evaluate_net's loop
        first_head = next(iter(heads))
        row = {"iter": solver.iter, "val_loss": scores["loss"]}
        row.update({k: v for k, v in scores[first_head].items() if k in TrainLog.CSV_FIELDS})
        row["heads"] = {h: {k: v for k, v in s.items()} for h, s in scores.items() if h != "loss"}
        log.evals.append(row)

    def save_all(snapshot: bool) -> None:
        if not main:
            return
        if snapshot:
            w, s = solver.snapshot()
            result.snapshots.append(s)
        log.save(meta)

    bar = None
    if progress and main:
        from tqdm.auto import tqdm
        bar = tqdm(total=int(solver_param.max_iter), initial=solver.iter, desc=model_name or "train",
                   unit="it", dynamic_ncols=True)

    def on_iteration(sv: Solver, rec: dict) -> None:
        log.records.append(rec)
        if bar is not None:
            bar.update(1)
            bar.set_postfix(loss=f"{rec['smoothed_loss']:.4g}", lr=f"{rec['lr']:.3g}")
        it = sv.iter
        evaluated = False
        if eval_every and it % eval_every == 0:
            run_eval()
            evaluated = True
        if snap_every and it % snap_every == 0:
            save_all(snapshot=True)
        elif evaluated:
            save_all(snapshot=False)

    solver.on_iteration = on_iteration
    try:
        remaining = int(solver_param.max_iter) - solver.iter
        if remaining > 0:
            solver.step(remaining)
    except KeyboardInterrupt:
        save_all(snapshot=True)  # Caffe's SIGINT -> snapshot action: nothing learnt is lost
        raise
    finally:
        if bar is not None:
            bar.close()
    if not (snap_every and solver.iter % snap_every == 0):
        if eval_every and solver.iter % eval_every != 0:
            run_eval()
        save_all(snapshot=True)
    result.iterations = solver.iter
    result.records, result.evals = log.records, log.evals
    return result


def _copy(param: caffe_pb2.SolverParameter) -> caffe_pb2.SolverParameter:
    p = caffe_pb2.SolverParameter()
    p.CopyFrom(param)
    return p


# --------------------------------------------------------------------------------------
# the zoo recipe
# --------------------------------------------------------------------------------------

DEFAULT_SPLITS = {"voc": ("train", "seg11valid"), "sbd": ("train", "val"),
                  "siftflow": ("trainval", "test"), "nyud": ("trainval", "test"),
                  "pascalcontext": ("train", "val")}


def train_model(model: str, dataset: str, root: str | os.PathLike, *, val_dataset: str | None = None,
                val_root: str | os.PathLike | None = None, train_split: str | None = None,
                val_split: str | None = None, dataset_options: Mapping[str, Any] | None = None,
                limit: int | None = None, **kwargs: Any) -> TrainResult:
    """Train a zoo model (``fcn_repro.zoo.get(model)``) on a dataset of ``fcn_repro.data``."""
    from fcn_repro import zoo
    from fcn_repro.data import get_dataset
    spec = zoo.get(model)
    if not spec.has_solver:
        raise CaffeFormatError(f"model {model!r} has no solver (a base net, deploy only)")
    opts = dict(dataset_options or {})
    if dataset == "nyud" and "modality" not in opts and spec.name.startswith("nyud-fcn32s-"):
        opts["modality"] = spec.name[len("nyud-fcn32s-"):]
    tr_split, va_split = DEFAULT_SPLITS.get(dataset, ("train", "val"))
    train_set = get_dataset(dataset, root, train_split or tr_split, limit=limit, **opts)
    vds = val_dataset or dataset
    val_set = get_dataset(vds, val_root or root, val_split or DEFAULT_SPLITS.get(vds, ("train", "val"))[1],
                          limit=limit, **(opts if vds == dataset else {}))
    return train(spec.train_net(), spec.solver(), train_set, val_set, val_net=spec.val_net(),
                 labels=spec.labels, model_name=spec.name, **kwargs)
