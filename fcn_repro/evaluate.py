"""Score a net on a dataset split as the release's ``score.py`` does, on any device.

Three pieces: an :class:`EvalPlan` says what is scored (each score head and the label it is
scored against, which net inputs the images and labels feed, whether the loss is summed) and
holds the confusion matrices; :meth:`EvalPlan.update` counts one image; :meth:`EvalPlan.result`
turns the matrices into scores. :func:`evaluate_net` is the loop between them, the project's
only one: ``fcn-repro eval`` (through :func:`evaluate`, which builds the net and the dataset from
names and writes ``metrics.json``), training's periodic val scores and sharded evaluation under
``torchrun`` (a shard of indices, matrices summed with ``all_reduce``) all run it.

The loop: a ``DataLoader`` (one full-size image at a time as the release feeds them, worker
processes, pinned memory on CUDA), ``non_blocking`` copies to the device, the net's forward,
argmax over classes and the confusion matrix update on the device; the host waits on the
device only at the end (or per image when predictions are saved as PNGs). Every score head
(SIFT Flow: ``score_sem`` and ``score_geo``) gets its own matrix.
"""
from __future__ import annotations

import contextlib
import math
import os
import sys
import textwrap
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator, Mapping, Sequence

import torch
from torch.utils.data import DataLoader
from tqdm import tqdm

from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.io.atomic import atomic_write_json
from caffe_import.io.text import ParsedNet, parse_net
from caffe_import.precision import score_agreement
from caffe_import.proto.schema import Schema, resolve_schema
from fcn_repro import zoo
from fcn_repro.data import dataset_info
from fcn_repro.data.base import SegmentationDataset
from fcn_repro.data.synthetic import is_synthetic
from fcn_repro.download import sha256_file
from fcn_repro.feeding import item_to_blobs
from fcn_repro.metrics import (ConfusionMatrix, geometric_accuracy, predicted_classes,
    scores_from_hist)
from fcn_repro.palette import save_label_png
from fcn_repro.zoo.match import matching_models

#: what a result keeps per head but a training log does not (see :func:`scores_by_head`)
_LOG_DROPPED = ("confusion_matrix", "class_names")
#: per-head scores also given at the top level of a result (the first head's)
_TOP_LEVEL = ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "confusion_matrix")


@dataclass(frozen=True)
class Head:
    """One score blob's scoring: the dataset's label it is compared with (``None``: the item's
    single label), its class count (``None``: the score blob's channel count, read on the first
    image), the classes left out of the class averages and the class names."""

    label: str | None = None
    num_classes: int | None = None
    exclude: tuple[int, ...] = ()
    class_names: tuple[str, ...] | None = None


def dataset_heads(net: Any, dataset: SegmentationDataset) -> dict[str, Head]:
    """The heads ``dataset`` is scored on (its ``score_heads``, classes and exclusions). A net
    whose one output has another name (a custom prototxt) is scored on that output."""
    blobs = {blob: label for blob, label in dataset.score_heads.items()}
    if not all(blob in net.blob_shapes for blob in blobs):
        if len(blobs) != 1 or len(net.outputs) != 1:
            missing = [b for b in blobs if b not in net.blob_shapes]
            raise CaffeFormatError(f"the net has no score blob {missing} for dataset {dataset.name!r} "
                                   f"(net outputs: {net.outputs})")
        blobs = {net.outputs[0]: next(iter(blobs.values()))}
    names = dataset.class_names
    return {blob: Head(label, dataset.num_classes.get(label), tuple(dataset.exclude_classes.get(label, ())),
                       tuple(names[label]) if label in names else None)
            for blob, label in blobs.items()}


@dataclass
class EvalPlan:
    """What is scored, and the running counts: see the module docstring.

    ``inputs`` are the net's input blobs the item's image(s) feed, ``labels`` those fed with the
    item's labels as float ``1 x 1 x H x W`` blobs (a val net made by
    :func:`fcn_repro.feeding.feed_net` computes its loss from them); the net's weighted loss is
    summed per image over ``loss_tops`` (none: no loss); ``exclude_absent`` leaves classes absent from the ground truth out
    of the class averages. The matrices and loss sums live on the device :meth:`start` names."""

    heads: dict[str, Head]
    inputs: list[str]
    labels: list[str] = field(default_factory=list)
    loss_tops: list[str] = field(default_factory=list)
    exclude_absent: bool = False
    matrices: dict[str, ConfusionMatrix] = field(default_factory=dict)
    loss_sum: torch.Tensor = field(default_factory=lambda: torch.zeros(2, dtype=torch.float64))

    @classmethod
    def for_net(cls, net: Any, dataset: SegmentationDataset, *, labels: Sequence[str] = (),
                heads: Mapping[str, Head] | None = None, loss: bool | None = None,
                exclude_absent: bool = False) -> "EvalPlan":
        """The plan for ``net`` on ``dataset``: the dataset's heads unless ``heads`` are given;
        the net's inputs not in ``labels`` take the images; ``loss`` defaults to "the net has
        loss tops and labels are fed"."""
        labels = list(labels)
        inputs = [n for n in net.inputs if n not in labels]
        if loss is None:
            loss = bool(labels)
        return cls(dict(heads) if heads is not None else dataset_heads(net, dataset), inputs,
                   labels, list(net.loss_weights) if loss else [], exclude_absent)

    @property
    def loss(self) -> bool:
        return bool(self.loss_tops)

    @property
    def outputs(self) -> list[str]:
        """The blobs each forward must give: the score heads and the loss tops."""
        return list(self.heads) + [t for t in self.loss_tops if t not in self.heads]

    def start(self, device: torch.device, sharded: bool = False) -> None:
        """Zero counts on ``device``; matrices whose class count is known are made now, so every
        rank of a ``sharded`` run reduces the same ones (also a rank with no images)."""
        unknown = [b for b, h in self.heads.items() if h.num_classes is None]
        if sharded and unknown:
            raise UsageError(f"sharded evaluation needs the class count of {unknown} up front "
                             "(give heads with num_classes)")
        self.matrices = {b: ConfusionMatrix(h.num_classes, device) for b, h in self.heads.items()
                         if h.num_classes is not None}
        self.loss_sum = torch.zeros(2, dtype=torch.float64, device=device)

    def feed(self, inputs: Any, labels: Any) -> dict[str, torch.Tensor]:
        """The net's input blobs for one item (already on the device)."""
        if not isinstance(inputs, Mapping) and len(self.inputs) != 1:
            raise CaffeFormatError(f"the net takes several inputs {self.inputs}; this dataset gives "
                                   "one image (NYUDv2: choose the modality that matches the net)")
        if isinstance(labels, Mapping):
            labels = {k: v for k, v in labels.items() if k in self.labels}
        return item_to_blobs((inputs, labels if self.labels else {}), self.inputs, self.labels)

    def update(self, scores: Mapping[str, torch.Tensor], labels: Any, item: str,
               loss: torch.Tensor | None = None) -> dict[str, torch.Tensor]:
        """Count one item: each head's argmax against its label (``H x W``), and its loss.
        Returns the predictions (``H x W`` per head), left on the device."""
        preds = {}
        for blob, head in self.heads.items():
            label = labels if not isinstance(labels, Mapping) else labels[head.label]
            pred = predicted_classes(scores[blob])[0]
            matrix = self.matrices.get(blob)
            if matrix is None:
                matrix = self.matrices[blob] = ConfusionMatrix(int(scores[blob].shape[1]), label.device)
            if matrix.num_classes != scores[blob].shape[1]:
                raise CaffeFormatError(f"score blob {blob!r} has {scores[blob].shape[1]} channels but "
                                       f"the dataset has {matrix.num_classes} classes")
            if pred.shape != label.shape:
                raise CaffeFormatError(f"score blob {blob!r} is {tuple(pred.shape)} but the label of "
                                       f"{item} is {tuple(label.shape)}: the net does not crop its "
                                       "output to the input size")
            matrix.update(pred, label)
            preds[blob] = pred
        if loss is not None:
            self.loss_sum[0] += loss.double()
            self.loss_sum[1] += 1
        return preds

    def all_reduce(self) -> None:
        """Sum every rank's matrices and loss sums (each rank must call it)."""
        for matrix in self.matrices.values():
            matrix.all_reduce()
        import torch.distributed as dist
        if self.loss and dist.is_available() and dist.is_initialized():
            dist.all_reduce(self.loss_sum)

    def result(self) -> dict[str, Any]:
        """``{"heads": {blob: scores}}``, the first head's scores also at the top level,
        ``geometric_acc`` for a ``geo`` head and ``loss`` (mean per image) when summed."""
        result: dict[str, Any] = {"heads": {b: self._scores(b, h) for b, h in self.heads.items()
                                            if b in self.matrices}}
        if result["heads"]:
            first = next(iter(result["heads"].values()))
            result.update((k, first[k]) for k in _TOP_LEVEL)
        geo = [b for b, h in self.heads.items() if h.label == "geo" and b in result["heads"]]
        if geo:
            result["geometric_acc"] = geometric_accuracy(self.matrices[geo[0]].numpy())
        if self.loss:
            total, images = self.loss_sum.tolist()
            result["loss"] = total / images if images else float("nan")
        return result

    def _scores(self, blob: str, head: Head) -> dict[str, Any]:
        hist = self.matrices[blob].numpy()
        scores = scores_from_hist(hist, exclude=head.exclude, exclude_absent=self.exclude_absent)
        scores.update(label=head.label or "label", num_classes=int(hist.shape[0]))
        if head.class_names is not None and len(head.class_names) == hist.shape[0]:
            scores["class_names"] = list(head.class_names)
        scores["confusion_matrix"] = hist.tolist()
        return scores


def _plain_module(net: Any) -> Any:
    """The net inside a ``DistributedDataParallel`` wrapper (scoring needs no gradient sync)."""
    from torch.nn.parallel import DistributedDataParallel
    return net.module if isinstance(net, DistributedDataParallel) else net


@contextlib.contextmanager
def _eval_mode(net: Any) -> Iterator[None]:
    """The net in eval mode without autograd, back in its own mode afterwards (``no_grad``
    rather than ``inference_mode``: a net that goes on training holds no inference tensors)."""
    was_training = net.training
    net.eval()
    try:
        with torch.no_grad():
            yield
    finally:
        net.train(was_training)


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, Mapping):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


class _PredictionWriter:
    """Palette PNGs of the predictions under ``folder`` (one sub-folder per head when several)."""

    def __init__(self, folder: str | os.PathLike, heads: Sequence[str]) -> None:
        self.folder, self.several = Path(folder), len(heads) > 1

    def write(self, preds: Mapping[str, torch.Tensor], item: str) -> None:
        for blob, pred in preds.items():
            sub = self.folder / blob if self.several else self.folder
            save_label_png(pred.to("cpu", torch.uint8).numpy(), sub / f"{item}.png")


def evaluate_net(net: Any, dataset: SegmentationDataset, plan: EvalPlan | None = None, *,
                 device: str | torch.device | None = None, indices: Sequence[int] | None = None,
                 all_reduce: bool = False, save_predictions: str | os.PathLike | None = None,
                 workers: int = 0, progress: bool = True) -> dict[str, Any]:
    """Run ``net`` over ``dataset`` (``indices`` only: a rank's shard) and score it by ``plan``
    (default: :meth:`EvalPlan.for_net`, images fed, no labels). Returns ``{"images", "seconds"}``
    and :meth:`EvalPlan.result`.

    ``net`` is a CaffeNet, or a ``DistributedDataParallel`` around one; ``device=None`` keeps it
    where it is. ``all_reduce=True`` sums every rank's counts before scoring, so every rank
    returns the one-process scores (every rank must call it, also one with an empty shard).
    Nothing in the loop waits on the device: copies are ``non_blocking`` from pinned memory
    (CUDA) and the counts stay on the device until the end; saving PNG predictions is the only
    per-image read."""
    net = _plain_module(net)
    plan = plan if plan is not None else EvalPlan.for_net(net, dataset)
    device = net.device if device is None else torch.device(device)
    order = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    writer = _PredictionWriter(save_predictions, list(plan.heads)) if save_predictions else None
    loader = DataLoader(dataset, batch_size=None, sampler=order, num_workers=workers,
                        pin_memory=device.type == "cuda")
    bar = tqdm(loader, desc=f"eval {dataset.name}/{dataset.split}", disable=not progress, file=sys.stderr)
    net.to(device)
    plan.start(device, sharded=all_reduce)
    start = time.perf_counter()
    with _eval_mode(net):
        for (inputs, labels), i in zip(bar, order):  # the bar first: it counts its last item
            inputs, labels = _to_device(inputs, device), _to_device(labels, device)
            scores = net.forward(outputs=plan.outputs, **plan.feed(inputs, labels))
            preds = plan.update(scores, labels, dataset.ids[i], net.total_loss(scores) if plan.loss else None)
            if writer is not None:
                writer.write(preds, dataset.ids[i])
    bar.close()
    if all_reduce:
        plan.all_reduce()
    return {"images": len(order), "seconds": time.perf_counter() - start, **plan.result()}


def scores_by_head(result: Mapping[str, Any]) -> dict[str, Any]:
    """:func:`evaluate_net`'s result in the form training logs keep: ``{blob: scores, "loss":
    mean loss or NaN}`` (per head without the confusion matrix and class names)."""
    out: dict[str, Any] = {head: {k: v for k, v in s.items() if k not in _LOG_DROPPED}
                           for head, s in result["heads"].items()}
    out["loss"] = result.get("loss", float("nan"))
    return out


def evaluate(*, model: str | None = None, net_path: str | os.PathLike | None = None,
             weights: str | os.PathLike, dataset: str | None = None, root: str | os.PathLike,
             split: str | None = None, device: str | torch.device = "cpu",
             save_predictions: str | os.PathLike | None = None, limit: int | None = None,
             workers: int = 0, output: str | os.PathLike | None = None, progress: bool = True,
             modality: str | None = None, exclude_absent: bool = False,
             name: str | None = None, fork: str | None = None,
             proto: str | os.PathLike | None = None, precision: str = "exact",
             agreement_images: int = 4, schema: Schema | None = None,
             net_param: ParsedNet | None = None) -> dict[str, Any]:
    """What ``fcn-repro eval`` does: build the dataset split (defaults: the model's dataset and
    the split the release scored; options such as the NYUDv2 modality from the model name) and
    the net (zoo ``model`` or prototxt ``net_path``) with ``weights``, score it, write ``output``
    (metrics.json, atomically) if given, and return the record. ``name`` labels the record's
    ``model`` (what ``fcn-repro tables`` matches on); default: the zoo name, or the zoo model
    whose deploy net the prototxt computes (:func:`fcn_repro.zoo.match.matching_models`), else
    the prototxt's file stem. ``precision`` "fast" also records ``agreement_with_exact``
    (:func:`precision_agreement` on the first ``agreement_images`` items). The prototxt is
    read once (with ``fork``/``proto``/``schema``), or not at all when the caller has read
    it already (``net_param``, :func:`caffe_import.io.text.parse_net`'s result)."""
    if (model is None) == (net_path is None):
        raise UsageError("give exactly one of model (a zoo name) or net_path (a prototxt)")
    if dataset is None and model is None:
        raise UsageError("a prototxt (net_path) needs a dataset name")
    info = dataset_info(dataset if dataset is not None else zoo.get(model).dataset)
    ds = info.build(root, split, model=model, limit=limit, modality=modality)  # a bad root fails first
    if net_path is not None and net_param is None:
        net_param = parse_net(net_path, schema=resolve_schema(schema, fork, proto))
    caffe_net = zoo.build_net(model=model, net_param=net_param, weights=weights, device=device,
                              precision=precision)
    matches = [] if net_path is None else matching_models(  # the built net had no unknown field
        net_param.net_param, ds.modality if info.name == "nyud" else None)
    record: dict[str, Any] = {
        "model": name or model or (matches[0] if len(matches) == 1 else Path(net_path).stem),
        "net": None if net_path is None else str(net_path),
        "net_matches": None if net_path is None else matches,  # zoo models computing what net does
        "weights": str(weights),
        "weights_sha256": sha256_file(weights), "dataset": info.name, "split": ds.split,
        "root": str(root), "device": str(device), "units": "fraction", "precision": precision,
        "synthetic_data": is_synthetic(root),
    }
    if info.name == "nyud":
        record["modality"] = ds.modality
    plan = EvalPlan.for_net(caffe_net, ds, exclude_absent=exclude_absent)
    record.update(evaluate_net(caffe_net, ds, plan, device=device, save_predictions=save_predictions,
                               workers=workers, progress=progress))
    if precision != "exact" and agreement_images > 0:
        exact_net = zoo.build_net(model=model, net_param=net_param, weights=weights,
                                  device=device)
        record["agreement_with_exact"] = precision_agreement(caffe_net, exact_net, ds, plan,
                                                             agreement_images, device)
        del exact_net
    if output is not None:
        atomic_write_json(output, record)
    return record


def precision_agreement(net: Any, exact_net: Any, dataset: Any, plan: EvalPlan,
                        images: int = 4, device: str | torch.device = "cpu") -> dict[str, Any]:
    """How a reduced-precision ``net`` agrees with ``exact_net`` on the first ``images`` items
    of ``dataset``: per score head of ``plan``, the argmax pixel agreement and the max
    |softmax probability difference| (``caffe_import.precision.score_agreement``)."""
    device = torch.device(device)
    n = min(int(images), len(dataset))
    loader = DataLoader(dataset, batch_size=None, sampler=list(range(n)))
    stats = {h: [0.0, 0, 0.0] for h in plan.heads}  # agreeing pixels, pixels, max prob diff
    with torch.no_grad():
        for inputs, labels in loader:
            feed = plan.feed(_to_device(inputs, device), _to_device(labels, device))
            ours = net.forward(outputs=list(plan.heads), **feed)
            ref = exact_net.forward(outputs=list(plan.heads), **feed)
            for h, s in stats.items():
                agree, diff, count = score_agreement(ref[h], ours[h])
                s[0], s[1], s[2] = s[0] + agree * count, s[1] + count, max(s[2], diff)
    return {"images": n, "heads": {h: {"argmax_agreement": s[0] / max(s[1], 1),
                                       "max_prob_diff": s[2]} for h, s in stats.items()}}


def format_scores(scores: Mapping[str, Any]) -> str:
    """The four scores of one head in percent, as ``eval`` and ``train`` print them."""
    def pct(v: Any) -> str:
        return "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:5.1f}"
    return (f"pixel acc {pct(scores['pixel_acc'])}  mean acc {pct(scores['mean_acc'])}  "
            f"mean IU {pct(scores['mean_iu'])}  f.w. IU {pct(scores['fw_iu'])}")


def format_per_class(scores: Mapping[str, Any], width: int = 96) -> list[str]:
    """One head's per-class IU in percent by class name (an index where the head has no
    names), wrapped to ``width``, and the classes left out of the averages by name (SIFT
    Flow's classes absent from its test set)."""
    ius = scores.get("per_class_iu") or []
    names = scores.get("class_names") or [str(c) for c in range(len(ius))]
    def pct(v: Any) -> str:
        return "n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:.1f}"
    entries = [f"{name} {pct(v)}" for name, v in zip(names, ius)]
    lines = textwrap.wrap(", ".join(entries), width, initial_indent="    per-class IU: ",
                          subsequent_indent="      ", break_on_hyphens=False)
    left_out = [names[c] if c < len(names) else str(c) for c in scores.get("excluded_classes") or ()]
    if left_out:
        lines.append(f"    classes left out of the means: {', '.join(left_out)}")
    return lines


def format_summary(record: Mapping[str, Any]) -> str:
    """A few lines for the terminal: per head, the four scores in percent."""
    lines = [f"{record.get('model')} on {record.get('dataset')}/{record.get('split')}: "
             f"{record.get('images')} images in {record.get('seconds', 0.0):.1f} s"]
    for head, s in record.get("heads", {}).items():
        lines.append(f"  {head:<10} {format_scores(s)}")
        lines += format_per_class(s)
    if "geometric_acc" in record:
        lines.append(f"  geometric accuracy {100 * record['geometric_acc']:.1f}")
    agreement = record.get("agreement_with_exact")
    if agreement:
        for head, a in agreement["heads"].items():
            lines.append(f"  {record.get('precision')} vs exact on {agreement['images']} images, "
                         f"{head}: argmax agreement {100 * a['argmax_agreement']:.3f}%, "
                         f"max |prob diff| {a['max_prob_diff']:.2e}")
    return "\n".join(lines)
