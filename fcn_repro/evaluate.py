"""Score a net on a dataset split as the release's ``score.py`` does, on any device.

The loop: a ``DataLoader`` (batch 1: the release feeds full-size images one at a time, worker
processes, pinned memory on CUDA), ``non_blocking`` copies to the device, the net's forward under
``torch.inference_mode``, argmax over classes and the confusion matrix update on the device; the
host waits on the device only at the end (or per image when predictions are saved as PNGs).
Every score head of the net (SIFT Flow: ``score_sem`` and ``score_geo``) gets its own matrix.

:func:`evaluate` builds the net and the dataset from names and paths (what ``fcn-repro eval``
runs) and writes ``metrics.json``; :func:`evaluate_net` is the loop on objects you already hold.
"""
from __future__ import annotations

import hashlib
import json
import math
import os
import sys
import time
from pathlib import Path
from typing import Any, Mapping

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
    if all(h in blobs for h in wanted):
        return wanted
    outputs = list(getattr(net, "outputs", []) or [])
    if len(wanted) == 1 and len(outputs) == 1:
        return {outputs[0]: next(iter(wanted.values()))}
    missing = [h for h in wanted if h not in blobs]
    raise CaffeFormatError(f"the net has no score blob {missing} for dataset {dataset.name!r} "
                           f"(net outputs: {outputs})")


def _net_inputs(net: Any, inputs: Any, device: torch.device) -> dict[str, torch.Tensor]:
    names = list(getattr(net, "inputs", []) or ["data"])
    if isinstance(inputs, Mapping):
        feed = {k: v.to(device, non_blocking=True) for k, v in inputs.items()}
        unknown = [k for k in feed if k not in names]
        if unknown:
            raise CaffeFormatError(f"dataset gives inputs {sorted(feed)} but the net's input blobs "
                                   f"are {names}")
        return feed
    if len(names) != 1:
        raise CaffeFormatError(f"the net takes several inputs {names}; this dataset gives one image "
                               "(NYUDv2: choose the modality that matches the net)")
    return {names[0]: inputs.to(device, non_blocking=True)}


def evaluate_net(net: Any, dataset: SegmentationDataset, *, device: str | torch.device = "cpu",
                 heads: Mapping[str, str | None] | None = None,
                 save_predictions: str | os.PathLike | None = None, workers: int = 0,
                 progress: bool = True, exclude_absent: bool = False) -> dict[str, Any]:
    """Run ``net`` (a CaffeNet, or any callable with ``forward(outputs=..., **inputs)``) over
    ``dataset`` and score every head. Returns ``{"images", "seconds", "heads": {blob: scores}}``
    plus the first head's scores at top level (and ``geometric_acc`` for SIFT Flow)."""
    from tqdm import tqdm

    device = torch.device(device)
    heads = dict(heads) if heads is not None else resolve_heads(net, dataset)
    if hasattr(net, "to"):
        net.to(device)
    if hasattr(net, "eval"):
        net.eval()
    loader = DataLoader(dataset, batch_size=1, shuffle=False, num_workers=workers,
                        pin_memory=device.type == "cuda", persistent_workers=False)
    matrices: dict[str, ConfusionMatrix] = {}
    save_dir = Path(save_predictions) if save_predictions else None
    if save_dir is not None:
        from fcn_repro.palette import save_label_png
    start = time.perf_counter()
    count = 0
    with torch.inference_mode():
        for i, (inputs, labels) in enumerate(tqdm(loader, desc=f"eval {dataset.name}/{dataset.split}",
                                                  disable=not progress, file=sys.stderr)):
            outs = net.forward(outputs=list(heads), **_net_inputs(net, inputs, device))
            for head, key in heads.items():
                scores = outs[head]
                label = labels if key is None else labels[key]
                label = label.to(device, non_blocking=True)
                if head not in matrices:
                    n = int(scores.shape[1])
                    expected = dataset.num_classes.get(key)
                    if expected is not None and expected != n:
                        raise CaffeFormatError(f"score blob {head!r} has {n} channels but dataset "
                                               f"{dataset.name!r} has {expected} classes")
                    matrices[head] = ConfusionMatrix(n, device)
                pred = scores.argmax(dim=1)
                if pred.shape != label.shape:
                    raise CaffeFormatError(f"score blob {head!r} is {tuple(pred.shape[1:])} but the "
                                           f"label of {dataset.ids[i]} is {tuple(label.shape[1:])}: "
                                           "the net does not crop its output to the input size")
                matrices[head].update(pred, label)
                if save_dir is not None:
                    sub = save_dir / head if len(heads) > 1 else save_dir
                    save_label_png(pred[0].to("cpu", torch.uint8).numpy(), sub / f"{dataset.ids[i]}.png")
            count += 1
    for m in matrices.values():
        m.all_reduce()
    seconds = time.perf_counter() - start
    result: dict[str, Any] = {"images": count, "seconds": seconds, "heads": {}}
    for head, key in heads.items():
        if head not in matrices:
            continue
        hist = matrices[head].numpy()
        excluded = dataset.exclude_classes.get(key, ())
        scores = scores_from_hist(hist, exclude=excluded, exclude_absent=exclude_absent)
        scores["label"] = key or "label"
        scores["num_classes"] = int(hist.shape[0])
        names = dataset.class_names.get(key)
        if names is not None and len(names) == hist.shape[0]:
            scores["class_names"] = list(names)
        scores["confusion_matrix"] = hist.tolist()
        result["heads"][head] = scores
    if result["heads"]:
        first = next(iter(result["heads"].values()))
        for k in ("pixel_acc", "mean_acc", "mean_iu", "fw_iu", "per_class_iu", "confusion_matrix"):
            result[k] = first[k]
    if "geo" in heads.values():
        geo_head = next(h for h, k in heads.items() if k == "geo")
        if geo_head in result["heads"]:
            result["geometric_acc"] = geometric_accuracy(np.asarray(result["heads"][geo_head]["confusion_matrix"]))
    return result


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
