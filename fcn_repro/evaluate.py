"""Score a net on a dataset split as the release's ``score.py`` does, on any device.

The loop: a ``DataLoader`` (batch 1: the release feeds full-size images one at a time, worker
processes, pinned memory on CUDA), ``non_blocking`` copies to the device, the net's forward under
``torch.inference_mode``, argmax over classes and the confusion matrix update on the device; the
host waits on the device only at the end (or per image when predictions are saved as PNGs).
Every score head of the net (SIFT Flow: ``score_sem`` and ``score_geo``) gets its own matrix.

:func:`evaluate` builds the net and the dataset from names and paths (what ``fcn-repro eval``
runs) and writes ``metrics.json``; :func:`evaluate_net` is the loop on objects you already hold,
and the project's only one: training's periodic val scores (``fcn_repro.train.evaluate``) and
sharded evaluation (``fcn_repro.distributed.evaluate_sharded``) run it on a shard of indices
with ``all_reduce``, feeding the labels to nets that compute a loss from them.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from torch.utils.data import DataLoader

from caffe_import.errors import CaffeFormatError
from fcn_repro.data import DATASETS, get_dataset
from fcn_repro.data.base import SegmentationDataset
from fcn_repro.metrics import ConfusionMatrix, geometric_accuracy, scores_from_hist
from caffe_import.io.atomic import atomic_write_text

#: dataset names a zoo ModelSpec may use -> the names of fcn_repro.data
DATASET_ALIASES = {"pascal-voc": "voc", "pascal": "voc", "voc2011": "voc", "voc2012": "voc",
                   "sift-flow": "siftflow", "pascal-context": "pascalcontext", "nyudv2": "nyud"}


def dataset_name(name: str) -> str:
    """Canonical dataset name (``voc``, ``sbd``, ``siftflow``, ``nyud``, ``pascalcontext``)."""
    key = DATASET_ALIASES.get(name.lower(), name.lower())
    if key not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; one of {sorted(DATASETS)}")
    return key


def nyud_modality(model_name: str | None) -> str:
    """The NYUDv2 modality a release model name implies (``nyud-fcn32s-color-hha`` -> ``color-hha``)."""
    if not model_name:
        return "color"
    for suffix, modality in (("-color-hha", "color-hha"), ("-color-d", "color-depth"),
                             ("-color-depth", "color-depth"), ("-hha", "hha"),
                             ("-depth", "depth"), ("-color", "color")):
        if model_name.endswith(suffix):
            return modality
    return "color"


def sha256_file(path: str | os.PathLike) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def write_json_atomic(path: str | os.PathLike, obj: Any) -> Path:
    """JSON (NaN written as null) through a temp file in the same folder + ``os.replace``."""
    path = Path(path)
    atomic_write_text(path, json.dumps(_json_safe(obj), indent=1) + "\n")
    return path


def _json_safe(obj: Any) -> Any:
    if isinstance(obj, float):
        return None if math.isnan(obj) or math.isinf(obj) else obj
    if isinstance(obj, Mapping):
        return {str(k): _json_safe(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_json_safe(v) for v in obj]
    if isinstance(obj, np.ndarray):
        return _json_safe(obj.tolist())
    if isinstance(obj, (np.floating, np.integer)):
        return _json_safe(obj.item())
    return obj


def resolve_heads(net: Any, dataset: SegmentationDataset) -> dict[str, str | None]:
    """Score blob -> label key. The dataset names the heads the release scores; a net with a
    single output whose name differs (a custom prototxt) is scored on that output."""
    wanted = dict(dataset.score_heads)
    blobs = set(getattr(net, "blobs", {}) or {}) | set(getattr(net, "outputs", []) or [])
    param = getattr(net, "net_param", None)  # every top, also those a loss layer consumes
    if param is not None:
        blobs.update(t for layer in param.layer for t in layer.top)
    if all(h in blobs for h in wanted):
        return wanted
    outputs = list(getattr(net, "outputs", []) or [])
    if len(wanted) == 1 and len(outputs) == 1:
        return {outputs[0]: next(iter(wanted.values()))}
    missing = [h for h in wanted if h not in blobs]
    raise CaffeFormatError(f"the net has no score blob {missing} for dataset {dataset.name!r} "
                           f"(net outputs: {outputs})")


HeadSpec = Mapping[str, "str | None | tuple[str | None, int]"]

#: per-head score keys that the training log and sharded evaluation keep (the matrix and class
#: names stay in ``evaluate_net``'s record, not in every row of a training log)
_LOG_DROPPED = ("confusion_matrix", "class_names")


def _plain_module(net: Any) -> Any:
    """The net inside a ``DistributedDataParallel`` wrapper (scoring needs no gradient sync)."""
    from torch.nn.parallel import DistributedDataParallel
    return net.module if isinstance(net, DistributedDataParallel) else net


def _net_device(net: Any) -> torch.device:
    params = list(net.parameters()) if hasattr(net, "parameters") else []
    return params[0].device if params else torch.device("cpu")


def _normalise_heads(heads: Mapping[str, Any], dataset: Any) -> tuple[dict[str, str | None],
                                                                    dict[str, int | None]]:
    """``{blob: label key}`` and ``{blob: class count or None}`` from either head form: a label
    key (the count then comes from ``dataset.num_classes``) or ``(label key, class count)``."""
    keys: dict[str, str | None] = {}
    counts: dict[str, int | None] = {}
    known = dict(getattr(dataset, "num_classes", {}) or {})
    for blob, spec in heads.items():
        if isinstance(spec, tuple):
            key, n = spec
            keys[blob], counts[blob] = key, int(n)
        else:
            keys[blob] = spec
            counts[blob] = int(known[spec]) if spec in known else None
    return keys, counts


def _label_blob(label: torch.Tensor) -> torch.Tensor:
    """A batch of ``N x H x W`` integer labels as the float ``N x 1 x H x W`` blob Caffe's data
    layers hand to a loss layer (Caffe holds labels as floats)."""
    t = label.to(torch.float32)
    return t.unsqueeze(1) if t.dim() == 3 else t


def _net_feed(names: list[str], inputs: Any, labels: Any, input_names: list[str],
              label_names: list[str]) -> dict[str, torch.Tensor]:
    """The net's input blobs for one collated item (tensors already on the device)."""
    if isinstance(inputs, Mapping):
        feed = dict(inputs)
    else:
        if len(input_names) != 1:
            raise CaffeFormatError(f"the net takes several inputs {names}; this dataset gives one "
                                   "image (NYUDv2: choose the modality that matches the net)")
        feed = {input_names[0]: inputs}
    if label_names:
        if isinstance(labels, Mapping):
            feed.update((k, _label_blob(v)) for k, v in labels.items() if k in label_names)
        else:
            feed[label_names[0]] = _label_blob(labels)
    unknown = [k for k in feed if k not in names]
    if unknown:
        raise CaffeFormatError(f"dataset gives inputs {sorted(feed)} but the net's input blobs "
                               f"are {names}")
    return feed


def _to_device(x: Any, device: torch.device) -> Any:
    if isinstance(x, Mapping):
        return {k: v.to(device, non_blocking=True) for k, v in x.items()}
    return x.to(device, non_blocking=True)


def predicted_classes(scores: torch.Tensor) -> torch.Tensor:
    """The class of each pixel of ``N x C x H x W`` scores: the first channel holding the
    maximum (NaN counts as the maximum), as score.py's ``argmax(0)`` gives it.

    ``max(dim=1).indices`` rather than ``argmax(dim=1)``: the same indices (first maximum,
    NaN first), but PyTorch's CPU ``argmax`` over the strided channel axis is ~3.5x slower
    (29 ms vs 8 ms for 21 x 375 x 500, one thread) - as long as a narrow net's forward."""
    return scores.max(dim=1).indices


def evaluate_net(net: Any, dataset: Any, *, device: str | torch.device | None = "cpu",
                 heads: HeadSpec | None = None, save_predictions: str | os.PathLike | None = None,
                 workers: int = 0, progress: bool = True, exclude_absent: bool = False,
                 indices: Sequence[int] | None = None, all_reduce: bool = False,
                 input_names: Sequence[str] | None = None, label_names: Sequence[str] | None = None,
                 exclude: Mapping[str | None, Sequence[int]] | None = None,
                 loss: bool | None = None) -> dict[str, Any]:
    """Run ``net`` over ``dataset`` and score every head: the one evaluation loop of the project
    (``fcn-repro eval``, training's periodic val scores and sharded evaluation all run it).

    ``net`` is a CaffeNet (or a ``DistributedDataParallel`` around one, or any object with
    ``forward(outputs=..., **inputs)``); ``device=None`` keeps it where its parameters are.
    ``heads`` maps score blobs to the label they are scored against, as a label key or as
    ``(label key, class count)`` (default: the dataset's ``score_heads``). ``indices`` scores
    only those items (a rank's shard); ``all_reduce=True`` then sums every rank's matrices (and
    loss sums) before scoring, so every rank returns the one-process scores - every rank must
    call it, also one whose shard is empty.

    ``input_names`` are the net's input blobs an image feeds (default: the net's inputs that
    ``label_names`` does not name); ``label_names`` are input blobs fed with the labels, as float
    ``N x 1 x H x W`` blobs as Caffe's data layers give them (a net made by
    :func:`fcn_repro.train.feed_net` takes its label as an input for the loss). ``loss`` adds
    ``"loss"``, the mean over images of the net's weighted loss (default: when the net has loss
    tops and labels are fed). ``exclude`` overrides the dataset's ``exclude_classes``.

    Nothing in the loop waits on the device: images and labels are copied with
    ``non_blocking`` from pinned memory (CUDA), argmax, confusion matrix and loss sums stay on
    the device, and the host reads them once at the end (saving PNG predictions is the only
    per-image read). The forward runs under ``torch.no_grad`` rather than ``inference_mode``,
    so a net that goes on training afterwards holds no inference tensors.

    Returns ``{"images", "seconds", "heads": {blob: scores}}`` plus the first head's scores at
    top level, ``geometric_acc`` for SIFT Flow and ``loss`` when computed.
    """
    from tqdm import tqdm

    net = _plain_module(net)
    device = _net_device(net) if device is None else torch.device(device)
    keys, counts = _normalise_heads(heads if heads is not None else resolve_heads(net, dataset), dataset)
    names = list(getattr(net, "inputs", []) or ["data"])
    label_names = list(label_names or [])
    input_names = list(input_names) if input_names else [n for n in names if n not in label_names]
    loss_weights = getattr(net, "loss_weights", None) or {}
    if loss is None:
        loss = bool(loss_weights) and bool(label_names)
    wanted = list(keys) + ([t for t in loss_weights if t not in keys] if loss else [])
    ids = list(getattr(dataset, "ids", []) or [])
    order = list(range(len(dataset))) if indices is None else [int(i) for i in indices]
    excluded_by = dict(getattr(dataset, "exclude_classes", {}) or {}) if exclude is None else dict(exclude)
    ds_label = f"{getattr(dataset, 'name', '') or type(dataset).__name__}/{getattr(dataset, 'split', '')}"

    if hasattr(net, "to"):
        net.to(device)
    was_training = bool(getattr(net, "training", False))
    if hasattr(net, "eval"):
        net.eval()
    loader = DataLoader(dataset, batch_size=1, shuffle=False, sampler=order, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    # matrices whose size is known are made up front, so that every rank reduces the same ones
    matrices = {h: ConfusionMatrix(n, device) for h, n in counts.items() if n is not None}
    loss_sum = torch.zeros(2, dtype=torch.float64, device=device)  # sum, images
    save_dir = Path(save_predictions) if save_predictions else None
    if save_dir is not None:
        from fcn_repro.palette import save_label_png
    start = time.perf_counter()
    count = 0
    try:
        with torch.no_grad():
            for i, (inputs, labels) in zip(order, tqdm(loader, desc=f"eval {ds_label}",
                                                       disable=not progress, file=sys.stderr)):
                inputs, labels = _to_device(inputs, device), _to_device(labels, device)
                outs = net.forward(outputs=wanted, **_net_feed(names, inputs, labels, input_names,
                                                               label_names))
                item = ids[i] if i < len(ids) else f"item {i}"
                for head, key in keys.items():
                    scores = outs[head]
                    if isinstance(labels, Mapping):
                        label = labels[key] if key is not None else next(iter(labels.values()))
                    else:
                        label = labels
                    n = int(scores.shape[1])
                    if head not in matrices:
                        matrices[head] = ConfusionMatrix(n, device)
                    if matrices[head].num_classes != n:
                        raise CaffeFormatError(
                            f"score blob {head!r} has {n} channels but dataset {ds_label!r} has "
                            f"{matrices[head].num_classes} classes")
                    pred = predicted_classes(scores)
                    if pred.shape != label.shape:
                        raise CaffeFormatError(
                            f"score blob {head!r} is {tuple(pred.shape[1:])} but the label of {item} "
                            f"is {tuple(label.shape[1:])}: the net does not crop its output to the "
                            "input size")
                    matrices[head].update(pred, label)
                    if save_dir is not None:
                        sub = save_dir / head if len(keys) > 1 else save_dir
                        save_label_png(pred[0].to("cpu", torch.uint8).numpy(), sub / f"{item}.png")
                if loss:
                    loss_sum[0] += net.total_loss(outs).double()
                    loss_sum[1] += 1
                count += 1
    finally:
        if was_training and hasattr(net, "train"):
            net.train()
    if all_reduce:
        missing = [h for h in keys if h not in matrices]
        if missing:
            raise CaffeFormatError(f"sharded evaluation needs the class count of {missing} up front "
                                   "(give heads as {blob: (label, classes)})")
        for m in matrices.values():
            m.all_reduce()
        import torch.distributed as dist
        if loss and dist.is_available() and dist.is_initialized():
            dist.all_reduce(loss_sum)
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {"images": count, "seconds": seconds, "heads": {}}
    for head, key in keys.items():
        if head not in matrices:
            continue
        hist = matrices[head].numpy()
        scores = scores_from_hist(hist, exclude=excluded_by.get(key, ()), exclude_absent=exclude_absent)
        scores["label"] = key or "label"
        scores["num_classes"] = int(hist.shape[0])
        class_names = dict(getattr(dataset, "class_names", {}) or {}).get(key)
        if class_names is not None and len(class_names) == hist.shape[0]:
            scores["class_names"] = list(class_names)
        scores["confusion_matrix"] = hist.tolist()
        result["heads"][head] = scores
    if result["heads"]:
        first = next(iter(result["heads"].values()))
        for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "confusion_matrix"):
            result[k] = first[k]
    if "geo" in keys.values():
        geo_head = next(h for h, k in keys.items() if k == "geo")
        if geo_head in result["heads"]:
            result["geometric_acc"] = geometric_accuracy(np.asarray(result["heads"][geo_head]["confusion_matrix"]))
    if loss:
        total, images = loss_sum.tolist()
        result["loss"] = total / images if images else float("nan")
    return result


def scores_by_head(result: Mapping[str, Any]) -> dict[str, Any]:
    """``evaluate_net``'s record in the form training logs keep: ``{blob: scores, "loss": mean
    loss or NaN}`` (per head without the confusion matrix and class names)."""
    out: dict[str, Any] = {head: {k: v for k, v in s.items() if k not in _LOG_DROPPED}
                           for head, s in result["heads"].items()}
    out["loss"] = result.get("loss", float("nan"))
    return out


def build_net(*, model: str | None = None, net: str | os.PathLike | None = None,
              weights: str | os.PathLike | None = None, device: str | torch.device = "cpu") -> tuple[Any, Any]:
    """A CaffeNet from a zoo model name (its deploy net) or a prototxt, with ``weights``.
    Returns ``(caffe_net, model_spec_or_None)``."""
    from caffe_import.net import CaffeNet
    if (model is None) == (net is None):
        raise ValueError("give exactly one of model (a zoo name) or net (a prototxt)")
    if weights is not None and not Path(weights).is_file():
        raise FileNotFoundError(f"weights file {weights} does not exist")
    spec = None
    if model is not None:
        from fcn_repro import zoo
        spec = zoo.get(model)
        param = spec.deploy_net()
    else:
        if not Path(net).is_file():
            raise FileNotFoundError(f"net prototxt {net} does not exist")
        param = str(net)
    caffe_net = CaffeNet(param, weights=str(weights) if weights is not None else None, phase="test")
    return caffe_net.to(torch.device(device)), spec


def evaluate(*, model: str | None = None, net: str | os.PathLike | None = None,
             weights: str | os.PathLike, dataset: str | None = None, root: str | os.PathLike,
             split: str | None = None, device: str | torch.device = "cpu",
             save_predictions: str | os.PathLike | None = None, limit: int | None = None,
             workers: int = 0, output: str | os.PathLike | None = None, progress: bool = True,
             modality: str | None = None, exclude_absent: bool = False,
             name: str | None = None) -> dict[str, Any]:
    """What ``fcn-repro eval`` does: build the net (zoo ``model`` or prototxt ``net``) with
    ``weights``, the dataset split (defaults: the model's dataset; seg11valid / test / val),
    score it, write ``output`` (metrics.json, atomically) if given, and return the record.
    ``name`` labels the record's ``model`` (what ``fcn-repro tables`` matches on); default: the
    zoo name, or the prototxt's file stem."""
    if (model is None) == (net is None):
        raise ValueError("give exactly one of model (a zoo name) or net (a prototxt)")
    spec = None
    if model is not None:
        from fcn_repro import zoo
        spec = zoo.get(model)
    if dataset is None:
        if spec is None:
            raise ValueError("--dataset is needed with --net")
        dataset = spec.dataset
    ds_name = dataset_name(dataset)
    split = split or {"voc": "seg11valid", "sbd": "val", "siftflow": "test", "nyud": "test",
                      "pascalcontext": "val"}[ds_name]
    options: dict[str, Any] = {"limit": limit}
    if ds_name == "nyud":
        options["modality"] = modality or nyud_modality(model)
    ds = get_dataset(ds_name, root, split, **options)  # a wrong root fails before the net is built
    caffe_net, _ = build_net(model=model, net=net, weights=weights, device=device)
    record: dict[str, Any] = {
        "model": name or (model if model is not None else Path(net).stem),
        "net": None if net is None else str(net),
        "weights": str(weights), "weights_sha256": sha256_file(weights),
        "dataset": ds_name, "split": split, "root": str(root), "device": str(device),
        "units": "fraction",
    }
    if ds_name == "nyud":
        record["modality"] = options["modality"]
    record.update(evaluate_net(caffe_net, ds, device=device, save_predictions=save_predictions,
                               workers=workers, progress=progress, exclude_absent=exclude_absent))
    if output is not None:
        write_json_atomic(output, record)
    return record


def format_summary(record: Mapping[str, Any]) -> str:
    """A few lines for the terminal: per head, the four scores in percent."""
    lines = [f"{record.get('model')} on {record.get('dataset')}/{record.get('split')}: "
             f"{record.get('images')} images in {record.get('seconds', 0.0):.1f} s"]
    for head, s in record.get("heads", {}).items():
        pct = lambda v: "  n/a" if v is None or (isinstance(v, float) and math.isnan(v)) else f"{100 * v:5.1f}"
        lines.append(f"  {head:<10} pixel acc {pct(s['pixel_acc'])}  mean acc {pct(s['mean_acc'])}  "
                     f"mean IU {pct(s['mean_iu'])}  f.w. IU {pct(s['fw_iu'])}"
                     + (f"  (classes left out: {s['excluded_classes']})" if s.get("excluded_classes") else ""))
    if "geometric_acc" in record:
        lines.append(f"  geometric accuracy {100 * record['geometric_acc']:.1f}")
    return "\n".join(lines)
