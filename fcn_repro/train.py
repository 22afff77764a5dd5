"""Training the release's models with Caffe's solver: ``solve.py`` as a library.

The release trained each model with its ``solver.prototxt`` (batch 1, fixed lr, momentum
0.99, unnormalized loss - "heavy learning"; FCN-AlexNet: ``iter_size`` 20 and a normalized
loss), initialised by net surgery from the previous stage (ILSVRC classifier -> 32s -> 16s ->
8s) with bilinear deconvolutions, and scored the val split every 4000 iterations. This
module does the same with :class:`caffe_import.solver.Solver`:

* the zoo's train/val nets read images through Python data layers; they are fed from
  ``fcn_repro.data`` datasets instead (:mod:`fcn_repro.feeding`);
* the training order is a seeded shuffle per epoch, a function of the iteration number, so a
  resumed run sees the images a straight run would have;
* the val scores are :func:`fcn_repro.evaluate.evaluate_net`'s, sharded over the ranks of a
  ``torchrun`` group;
* snapshots (``<out>/snapshots/train_iter_<N>.caffemodel`` + solver state) are atomic, a
  Ctrl-C snapshots before exiting (and says which iteration it saved), ``resume=True``
  continues from the newest one, and ``keep_last=N`` deletes all but the N newest (a full-size
  FCN snapshot is 1.1 GB);
* ``<out>/log.csv`` and ``<out>/log.json`` hold loss, lr and val scores, ``<out>/curves.png``
  plots them (mean IU in percent, as ``fcn-repro eval`` and ``train`` print it).
"""
from __future__ import annotations

import csv
import io
import json
import os
import re
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import torch
from tqdm.auto import tqdm

from caffe_import.errors import UsageError
from caffe_import.io.atomic import atomic_write_bytes, atomic_write_json
from caffe_import.net import CaffeNet
from caffe_import.proto import caffe_pb2
from caffe_import.solver import Solver
from fcn_repro import zoo
from fcn_repro.data import dataset_info
from fcn_repro.distributed import cleanup, init_from_env, shard, wrap_ddp
from fcn_repro.evaluate import EvalPlan, evaluate_net, scores_by_head
from fcn_repro.feeding import data_tops, feed_net, item_to_blobs
from fcn_repro.surgery import init_upsampling, transplant

__all__ = ["train", "train_model", "train_distributed", "TrainResult", "TrainLog", "Schedule", "Feeds", "latest_snapshot",
           "shuffled_index", "initialize", "prune_snapshots", "zero_weight_layers",
           "TrainingWarning"]

SNAPSHOT_RE = re.compile(r"_iter_(\d+)\.solverstate\.safetensors$")
#: a receiver of progress messages (the CLI prints them)
Say = Callable[[str], Any]


class TrainingWarning(UserWarning):
    """A training run that cannot do what it is asked (the CLI prints it as one line)."""


def shuffled_index(pass_index: int, n: int, seed: int, shuffle: bool = True) -> int:
    """Dataset index of forward pass ``pass_index``: a seeded permutation per epoch."""
    if n < 1:
        raise ValueError("empty training set")
    epoch, pos = divmod(int(pass_index), n)
    if not shuffle:
        return pos
    g = torch.Generator().manual_seed(int(seed) * 100003 + epoch)
    return int(torch.randperm(n, generator=g)[pos])


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
        atomic_write_json(self.out / "log.json", {"meta": meta, "train": self.records, "val": self.evals})
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
        atomic_write_bytes(self.out / "log.csv", buf.getvalue().encode())
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
            ax[0].legend(loc="upper right")
        ax[0].set_xlabel("iteration")
        ax[0].set_title("training loss")
        if self.evals:  # in percent, as eval and train print the scores
            ax[1].plot([e["iter"] for e in self.evals],
                       [100 * _number(e.get("mean_iu")) for e in self.evals], marker="o")
        ax[1].set_xlabel("iteration")
        ax[1].set_ylabel("%")
        ax[1].set_title("val mean IU (%)")
        fig.tight_layout()
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=80)
        plt.close(fig)
        atomic_write_bytes(self.out / "curves.png", buf.getvalue())


def _number(v: Any) -> float:
    """A score as a float (a JSON null, read back from a log, is NaN)."""
    return float("nan") if v is None else float(v)


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
    #: the iteration a ``resume=True`` run continued from (None: it started at 0)
    resumed_from: int | None = None


def latest_snapshot(folder: str | os.PathLike) -> Path | None:
    """The newest ``*_iter_<N>.solverstate.safetensors`` under ``folder`` (by N)."""
    folder = Path(folder)
    if not folder.is_dir():
        return None
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := SNAPSHOT_RE.search(p.name))]
    return max(found)[1] if found else None


def prune_snapshots(folder: str | os.PathLike, keep: int) -> list[Path]:
    """Delete all but the ``keep`` newest snapshots under ``folder`` (by iteration: the solver
    state and the weights it names, ``.caffemodel`` or ``.caffemodel.h5``); returns what was
    deleted. Other files are left alone."""
    if keep < 1:
        raise UsageError(f"keep {keep} snapshots: give at least 1 (the one a resumed run needs)")
    folder = Path(folder)
    found = sorted((int(m.group(1)), p) for p in folder.iterdir() if (m := SNAPSHOT_RE.search(p.name))) \
        if folder.is_dir() else []
    deleted = []
    for _, state in found[:-keep]:
        stem = state.name[: -len(".solverstate.safetensors")]
        for path in (state, folder / f"{stem}.caffemodel", folder / f"{stem}.caffemodel.h5"):
            if path.is_file():
                path.unlink()
                deleted.append(path)
    return deleted


def initialize(net: Any, init: str | os.PathLike | Mapping[str, Any] | None,
               log: Say | None = None) -> list[str]:
    """The release's surgery: transplant ``init`` (by layer name, coercing fc -> conv), then
    bilinear weights for every deconvolution whose name contains ``up``. Returns the record:
    the transplant's lines as the release's ``surgery.transplant`` prints them, then ``bilinear
    NAME`` per deconvolution. ``log`` gets each as it happens, the transplant's lines verbatim
    and a sentence per deconvolution (``upscore: deconvolution initialised with ...``)."""
    lines: list[str] = []
    if init is not None:
        lines += transplant(net, init, log=log)
    ups = [n for n, t in zip(net.layer_names, net.layer_types) if t == "Deconvolution" and "up" in n]
    if ups:
        lines += [f"bilinear {n}" for n in init_upsampling(net, ups, log=log)]
    return lines


@dataclass(frozen=True)
class Schedule:
    """When a run stops, snapshots and scores the val split (0: never on the way; a run always
    snapshots where it stops). Scores default to the snapshot interval, as the release scored
    after every 4000-iteration snapshot."""

    max_iter: int
    snapshot_every: int
    eval_every: int

    @classmethod
    def of(cls, param: caffe_pb2.SolverParameter, max_iter: int | None = None,
           snapshot_every: int | None = None, eval_every: int | None = None) -> "Schedule":
        snap = int(snapshot_every if snapshot_every is not None else param.snapshot)
        return cls(int(max_iter if max_iter is not None else param.max_iter), snap,
                   int(eval_every if eval_every is not None else (snap or 4000)))

    def due(self, iteration: int) -> tuple[bool, bool]:
        """(snapshot, score) after ``iteration`` updates."""
        return (bool(self.snapshot_every) and iteration % self.snapshot_every == 0,
                bool(self.eval_every) and iteration % self.eval_every == 0)

    def solver_param(self, param: caffe_pb2.SolverParameter) -> caffe_pb2.SolverParameter:
        """A copy of ``param`` running to ``max_iter`` with the solver's own snapshots and test
        passes off (they are taken here, on rank 0, with the logs)."""
        out = type(param)()  # the solver's own schema (a Caffe fork's SolverParameter)
        out.CopyFrom(param)
        out.max_iter, out.snapshot, out.test_interval = self.max_iter, 0, 0
        return out


@dataclass(frozen=True)
class Feeds:
    """Which data-layer tops of a net the dataset's images and labels feed: the labels are the
    item's label keys (several label maps), else the model's first label blob, else the last
    data top; the other data tops take the images."""

    inputs: list[str]
    labels: list[str]

    @classmethod
    def of(cls, net_param: caffe_pb2.NetParameter, item: tuple[Any, Any],
           labels: Sequence[str] | None = None) -> "Feeds":
        tops = data_tops(net_param)
        if isinstance(item[1], Mapping):
            names = list(item[1])
        else:
            names = [labels[0]] if labels else [tops[-1]]
        return cls([t for t in tops if t not in names] or ["data"], names)

    def net(self, net_param: caffe_pb2.NetParameter, item: tuple[Any, Any], phase: str,
            device: torch.device) -> Any:
        """A CaffeNet of ``net_param`` with Input layers shaped like ``item``'s blobs."""
        sample = item_to_blobs(item, self.inputs, self.labels)
        return CaffeNet(feed_net(net_param, {k: tuple(v.shape) for k, v in sample.items()}),
                        phase=phase, device=device)


@dataclass(frozen=True)
class _TrainingOrder:
    """The solver's feed: forward pass ``k`` of rank ``r`` of ``w`` reads item
    ``shuffled_index(k*w + r)``."""

    dataset: Any
    feeds: Feeds
    seed: int
    rank: int = 0
    world_size: int = 1

    def __call__(self, pass_index: int) -> dict[str, torch.Tensor]:
        k = shuffled_index(pass_index * self.world_size + self.rank, len(self.dataset), self.seed)
        return item_to_blobs(self.dataset[k], self.feeds.inputs, self.feeds.labels)


class _Validator:
    """The periodic val scores: a test-phase net takes the training net's weights and
    :func:`fcn_repro.evaluate.evaluate_net` scores this rank's shard of the first ``limit``
    images (summed over the ranks), feeding the labels to the val net's loss."""

    def __init__(self, net_param: caffe_pb2.NetParameter, dataset: Any, feeds: Feeds,
                 device: torch.device, limit: int | None, rank: int, world_size: int) -> None:
        self.net = feeds.net(net_param, dataset[0], "test", device)
        self.dataset = dataset
        self.plan = EvalPlan.for_net(self.net, dataset, labels=feeds.labels)
        self.indices = shard(min(limit or len(dataset), len(dataset)), rank, world_size)
        self.all_reduce = world_size > 1

    def score(self, weights: Mapping[str, Any], iteration: int) -> dict[str, Any]:
        """A val row of the log: loss, the first head's scores, and every head's."""
        self.net.load_weights(weights)
        scores = scores_by_head(evaluate_net(self.net, self.dataset, self.plan, indices=self.indices,
                                             all_reduce=self.all_reduce, progress=False))
        row: dict[str, Any] = {"iter": iteration, "val_loss": scores.pop("loss")}
        first = next(iter(self.plan.heads))
        row.update((k, v) for k, v in scores[first].items() if k in TrainLog.CSV_FIELDS)
        row["heads"] = scores
        return row


class _Run:
    """One run's per-iteration work on the schedule: log, score, snapshot (files on rank 0)."""

    def __init__(self, solver: Any, log: TrainLog, schedule: Schedule, validator: _Validator | None,
                 meta: Mapping[str, Any], main: bool, bar: Any = None, *,
                 keep_last: int | None = None, say: Say = print) -> None:
        self.solver, self.log, self.schedule, self.validator = solver, log, schedule, validator
        self.meta, self.main, self.bar = dict(meta), main, bar
        self.keep_last, self.say = keep_last, say
        self.snapshots: list[Path] = []

    def on_iteration(self, solver: Any, record: dict) -> None:
        self.log.records.append(record)
        if self.bar is not None:
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{record['smoothed_loss']:.4g}", lr=f"{record['lr']:.3g}")
        snapshot, score = self.schedule.due(solver.iter)
        if score:
            self.score()
        if snapshot or score:
            self.save(snapshot)

    def score(self) -> None:
        if self.validator is not None:
            self.log.evals.append(self.validator.score(self.solver.net.weights(), self.solver.iter))

    def save(self, snapshot: bool) -> None:
        if not self.main:
            return
        if snapshot:
            self.snapshots.append(self.solver.snapshot()[1])
            if self.keep_last:
                gone = set(prune_snapshots(self.snapshots[-1].parent, self.keep_last))
                self.snapshots = [p for p in self.snapshots if p not in gone]
        self.log.save(self.meta)

    def run(self) -> None:
        """Step to ``max_iter``; a Ctrl-C snapshots first (Caffe's SIGINT snapshot action), and
        a run that stops off the schedule scores and snapshots where it stopped."""
        try:
            remaining = self.schedule.max_iter - self.solver.iter
            if remaining > 0:
                self.solver.step(remaining)
        except KeyboardInterrupt:
            if self.bar is not None:
                self.bar.close()  # before the message, not over it
            self.save(snapshot=True)
            if self.main:
                self.say(f"interrupted: saved iteration {self.solver.iter} "
                         f"({self.solver.snapshot_paths()[0]} and its solver state)")
            raise
        finally:
            if self.bar is not None:
                self.bar.close()
        snapshot, score = self.schedule.due(self.solver.iter)
        if not snapshot:
            if self.schedule.eval_every and not score:
                self.score()
            self.save(snapshot=True)


def _start(state: Path | None, resume: bool, folder: Path, say: Say) -> None:
    """Say where a resumed run starts before any surgery line."""
    if resume and state is None:
        say(f"nothing to resume: no snapshot in {folder}; starting at iteration 0")


def zero_weight_layers(net: Any) -> list[str]:
    """Layers whose weights (first param blob) are all zero: in a net built from a prototxt,
    those with no filler (Caffe's default filler is ``constant`` 0), as the release's own
    prototxts are written (their weights came from surgery)."""
    return [step.name for step in net.steps
            if step.module.blobs and not bool(step.module.blobs[0].detach().any())]


def _say_start_without_init(net: Any, say: Say, warn: bool) -> None:
    """Where the weights of a run with no init weights come from, truthfully: the fillers,
    or zeros for layers with none; two or more zero layers in a net cannot learn."""
    zeros = zero_weight_layers(net)
    if not zeros:
        say("starting from random weights (the net's fillers): no init weights given")
        return
    say(f"starting without init weights: {len(zeros)} layer(s) have no filler in the prototxt "
        f"and start at zero ({', '.join(zeros)}); the others from their fillers")
    if warn and len(zeros) > 1:
        warnings.warn(f"this run cannot learn: {len(zeros)} weight layers start at zero, and no "
                      f"gradient passes a layer whose weights are zero, so the layers below "
                      f"{zeros[-1]} never change; give init weights (--init, e.g. the previous "
                      "stage's caffemodel or VGG16's for a 32s net, as the release did)",
                      TrainingWarning, stacklevel=3)


def _progress_bar(total: int, initial: int, name: str) -> Any:
    return tqdm(total=total, initial=initial, desc=name or "train", unit="it", dynamic_ncols=True)


def train(train_net: caffe_pb2.NetParameter, solver_param: caffe_pb2.SolverParameter,
          train_set: Any, val_set: Any = None, *, val_net: caffe_pb2.NetParameter | None = None,
          out: str | os.PathLike = "train_out", init: Any = None, device: str | torch.device = "cpu",
          max_iter: int | None = None, resume: bool = False, eval_interval: int | None = None,
          eval_limit: int | None = None, snapshot_interval: int | None = None, seed: int = 1337,
          labels: Sequence[str] | None = None, progress: bool = True,
          model_name: str = "", wrap: Callable[[Any], Any] | None = None,
          rank: int = 0, world_size: int = 1, say: Say | None = None,
          keep_last: int | None = None) -> TrainResult:
    """Train ``train_net`` with ``solver_param`` on ``train_set``; score ``val_set`` periodically.

    ``eval_interval`` defaults to the solver's ``snapshot`` (the release scored after every
    4000 iterations); ``snapshot_interval`` overrides the solver's ``snapshot``. ``wrap(net)``
    may return a ``DistributedDataParallel`` wrapper (see :mod:`fcn_repro.distributed`);
    ``rank``/``world_size`` shard the training order and the evaluation, and only rank 0
    writes files. ``say`` gets rank 0's messages: where the weights come from (each line of
    the surgery; without ``init``, the fillers and the layers with none, which start at zero),
    where a resumed run continues and, on Ctrl-C, the iteration saved. Without ``init``, two or
    more layers starting at zero is a :class:`TrainingWarning`: such a net cannot learn.
    ``keep_last=N`` keeps only the N newest snapshots (:func:`prune_snapshots`).
    """
    out, device = Path(out), torch.device(device)
    say = say if say is not None and rank == 0 else (lambda line: None)
    if len(train_set) == 0:
        raise UsageError("the training set is empty")
    schedule = Schedule.of(solver_param, max_iter, snapshot_interval, eval_interval)
    param = schedule.solver_param(solver_param)
    first = train_set[0]
    feeds = Feeds.of(train_net, first, labels)
    # fillers draw from torch's generator: seed it (Caffe: random_seed) so runs repeat
    torch.manual_seed(int(param.random_seed) if param.random_seed >= 0 else seed)
    net = feeds.net(train_net, first, "train", device)
    state = latest_snapshot(out / "snapshots") if resume else None
    _start(state, resume, out / "snapshots", say)
    # every rank alike (DDP also broadcasts rank 0's); a resumed run's snapshot replaces it
    surgery_log = initialize(net, init, log=say if state is None else None)
    if state is None and init is None:
        _say_start_without_init(net, say, warn=rank == 0)
    solver = Solver(param, net, feed=_TrainingOrder(train_set, feeds, seed, rank, world_size),
                    model=wrap(net) if wrap is not None else net, device=device,
                    snapshot_prefix=out / "snapshots" / "train")
    log, resumed_from = TrainLog(out), None
    if state is not None:
        solver.restore(state)
        log.load(resumed_from := solver.iter)
        say(f"resumed at iteration {solver.iter} from {state}")
    validator = None
    if val_set is not None and len(val_set):
        validator = _Validator(val_net if val_net is not None else train_net, val_set, feeds, device,
                               eval_limit, rank, world_size)
    bar = _progress_bar(schedule.max_iter, solver.iter, model_name) if progress and rank == 0 else None
    meta = {"model": model_name, "solver": str(param), "seed": seed, "world_size": world_size}
    run = _Run(solver, log, schedule, validator, meta, rank == 0, bar, keep_last=keep_last, say=say)
    solver.on_iteration = run.on_iteration
    run.run()
    return TrainResult(out, solver.iter, log.records, log.evals, run.snapshots, surgery_log, resumed_from)


# --------------------------------------------------------------------------------------
# the zoo recipe
# --------------------------------------------------------------------------------------

def train_model(model: str, dataset: str | None, root: str | os.PathLike, *, val_dataset: str | None = None,
                val_root: str | os.PathLike | None = None, train_split: str | None = None,
                val_split: str | None = None, dataset_options: Mapping[str, Any] | None = None,
                limit: int | None = None, **kwargs: Any) -> TrainResult:
    """Train a zoo model (``fcn_repro.zoo.get(model)``) on a dataset of ``fcn_repro.data``
    (``None``: the model's own, as ``fcn-repro eval`` defaults): the release's training and
    scoring splits unless given, options such as the NYUDv2
    modality from the model's name (``dataset_options`` override them)."""
    spec = zoo.get(model)
    if not spec.has_solver:
        raise UsageError(f"model {model!r} has no solver (a base net, deploy only)")
    dataset = dataset or spec.dataset
    train_info = dataset_info(dataset)
    val_info = dataset_info(val_dataset or dataset)
    options = dict(dataset_options or {})
    train_set = train_info.build(root, train_split or train_info.train_split, model=spec.name,
                                 limit=limit, **options)
    val_set = val_info.build(val_root or root, val_split or val_info.eval_split, model=spec.name,
                             limit=limit, **(options if val_info is train_info else {}))
    return train(spec.train_net(), spec.solver(), train_set, val_set, val_net=spec.val_net(),
                 labels=spec.labels, model_name=spec.name, **kwargs)


def train_distributed(model: str, dataset: str | None, root: str | os.PathLike, *,
                      device: str | torch.device | None = None, **kwargs: Any) -> Any:
    """:func:`train_model` under ``torchrun``: DDP training, sharded evaluation (the process
    group from :mod:`fcn_repro.distributed`).

    Returns the ``TrainResult`` on rank 0 and ``None`` elsewhere (only rank 0 writes files).
    """
    info = init_from_env(device)
    try:
        kwargs = dict(kwargs)
        kwargs["progress"] = kwargs.get("progress", True) and info.is_main
        result = train_model(model, dataset, root, device=info.device, wrap=wrap_ddp,
                             rank=info.rank, world_size=info.world_size, **kwargs)
        return result if info.is_main else None
    finally:
        cleanup()
