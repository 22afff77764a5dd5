"""Segment image files with a net: label PNG (VOC palette), colour overlay, optional scores.

Each image is preprocessed as the release does for the model's dataset (RGB -> BGR, minus the
BGR mean, full size, batch 1), run through the deploy net, and the argmax over the classes of
every score blob is written. Only nets fed by one colour image are supported here (NYUDv2 nets
with depth / HHA inputs need those inputs: use ``fcn-repro eval`` on the dataset).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.io.atomic import atomic_open
from caffe_import.io.text import ParsedNet
from caffe_import.proto.schema import Schema, resolve_schema
from fcn_repro import zoo
from fcn_repro.data.base import open_image
from fcn_repro.data.transforms import VOC_MEAN_BGR, caffe_rgb, rgb_array
from fcn_repro.errors import ImageError
from fcn_repro.palette import save_label_png, save_overlay_png


@dataclass
class Segmentation:
    """What :func:`segment` gives for one image."""

    rgb: np.ndarray                       #: H x W x 3 uint8 input image
    labels: dict[str, np.ndarray]         #: score blob -> H x W uint8 argmax
    scores: dict[str, np.ndarray] = field(default_factory=dict)  #: score blob -> C x H x W float32


def save_npy_atomic(array: np.ndarray, path: str | os.PathLike) -> Path:
    path = Path(path)
    with atomic_open(path) as fh:
        np.save(fh, array, allow_pickle=False)
    return path


def single_input(net: Any) -> str:
    """The one input blob of a single-image net."""
    names = list(net.inputs)
    if len(names) != 1:
        raise CaffeFormatError(f"fcn-repro infer segments single-image nets; this net takes {names}")
    return names[0]


def score_blobs(net: Any, spec: Any = None) -> list[str]:
    """The blobs to segment with: the zoo model's score blobs, else the net's outputs."""
    if spec is not None:
        return list(spec.outputs)
    outputs = list(net.outputs)
    if not outputs:
        raise CaffeFormatError("the net has no output blob to segment with")
    return outputs


def segment(net: Any, rgb: np.ndarray, *, mean_bgr: Sequence[float] = VOC_MEAN_BGR,
            device: str | torch.device = "cpu", heads: Sequence[str] | None = None,
            keep_scores: bool = False) -> Segmentation:
    """Segment one ``H x W x 3`` uint8 RGB image with a CaffeNet (already on ``device``)."""
    device = torch.device(device)
    blob = single_input(net)
    heads = list(heads) if heads else score_blobs(net)
    x = torch.from_numpy(caffe_rgb(rgb, tuple(mean_bgr)))[None].to(device, non_blocking=True)
    with torch.inference_mode():
        outs = net.forward(outputs=heads, **{blob: x})
    result = Segmentation(rgb=rgb, labels={})
    for head in heads:
        scores = outs[head][0]
        result.labels[head] = scores.argmax(0).to("cpu", torch.uint8).numpy()
        if keep_scores:
            result.scores[head] = scores.float().cpu().numpy()
    return result


_DISTINCT = "rename one, or segment them in separate calls with separate -o folders"


def output_stems(images: Sequence[str | os.PathLike]) -> dict[Path, Path]:
    """Each input image -> its outputs' path stem relative to the output folder.

    Images keep their file stems when those are all different, wherever the images are
    (``/abs/d1/a.jpg rel/d2/b.jpg`` -> ``a``, ``b``). When two share a stem, every image keeps
    its folders below the deepest folder the inputs share (``d1/a.jpg d2/a.jpg`` -> ``d1/a``,
    ``d2/a``), so no result overwrites another. An image given twice (however spelled) is
    segmented once. Raises :class:`UsageError` naming the inputs when two would still write one
    file (``a.jpg`` beside ``a.png``), before anything is computed.
    """
    unique: dict[Path, Path] = {}
    for p in images:
        unique.setdefault(Path(os.path.abspath(p)), Path(p))
    paths, absolute = list(unique.values()), list(unique)
    stems = {p: Path(a.stem) for p, a in zip(paths, absolute)}
    if len(set(stems.values())) < len(stems):
        base = Path(os.path.commonpath([a.parent for a in absolute]))
        stems = {p: a.parent.relative_to(base) / a.stem for p, a in zip(paths, absolute)}
    by_stem: dict[Path, list[Path]] = {}
    for path, stem in stems.items():
        by_stem.setdefault(stem, []).append(path)
    for stem, group in by_stem.items():
        if len(group) > 1:
            raise UsageError(f"{' and '.join(map(str, group))} would all write {stem}.png; "
                             f"{_DISTINCT}")
    return stems


def _output_paths(out: Path, stem: Path, heads: Sequence[str], save_scores: bool) -> dict[str, list[Path]]:
    """Per score head: the label PNG, the overlay PNG and (``save_scores``) the score array."""
    paths = {}
    for head in heads:
        tag = "" if len(heads) == 1 else f"_{head}"
        base = out / stem.parent / f"{stem.name}{tag}"
        paths[head] = [base.with_name(base.name + ".png"), base.with_name(base.name + "_overlay.png")]
        if save_scores:
            paths[head].append(base.with_name(base.name + "_scores.npy"))
    return paths


def _check_distinct(plan: dict[Path, dict[str, list[Path]]]) -> None:
    """No two images write one file (``a.jpg``'s overlay is ``a_overlay.png``, as is the label
    of an image called ``a_overlay.jpg``)."""
    owner: dict[Path, Path] = {}
    for image, outputs in plan.items():
        for path in (p for paths in outputs.values() for p in paths):
            if path in owner:
                raise UsageError(f"{owner[path]} and {image} would both write {path}; {_DISTINCT}")
            owner[path] = image


def infer(images: Sequence[str | os.PathLike], output_dir: str | os.PathLike, *,
          model: str | None = None, net_path: str | os.PathLike | None = None,
          weights: str | os.PathLike | None = None, device: str | torch.device = "cpu",
          save_scores: bool = False, mean_bgr: Sequence[float] | None = None,
          fork: str | None = None, proto: str | os.PathLike | None = None,
          precision: str = "exact", schema: Schema | None = None,
          net_param: ParsedNet | None = None) -> list[Path]:
    """What ``fcn-repro infer`` does. Writes ``<stem>.png`` (labels, VOC palette),
    ``<stem>_overlay.png`` and with ``save_scores`` ``<stem>_scores.npy`` per image (suffixed
    ``_<head>`` for nets with several score blobs), with the stems of :func:`output_stems`;
    returns the written paths. Missing images and output name clashes fail before the net is
    built. ``net_param``: the prototxt ``net_path`` read already (``parse_net``), not read again."""
    stems = output_stems(images)
    for path in stems:
        if not path.is_file():
            raise FileNotFoundError(f"image {path} does not exist")
    caffe_net = zoo.build_net(model=model, net_path=None if net_param is not None else net_path,
                              net_param=net_param, weights=weights, device=device,
                              schema=resolve_schema(schema, fork, proto), precision=precision)
    spec = zoo.get(model) if model is not None else None
    if mean_bgr is None:
        mean_bgr = VOC_MEAN_BGR if spec is None else spec.means.get(single_input(caffe_net), spec.mean)
    heads = score_blobs(caffe_net, spec)
    out = Path(output_dir)
    plan = {path: _output_paths(out, stem, heads, save_scores) for path, stem in stems.items()}
    _check_distinct(plan)
    written: list[Path] = []
    for path, outputs in plan.items():
        try:
            rgb = rgb_array(open_image(path))
        except OSError as exc:
            raise ImageError(f"not a readable image ({exc})", path=path) from exc
        seg = segment(caffe_net, rgb, mean_bgr=mean_bgr, device=device, heads=heads,
                      keep_scores=save_scores)
        for head, label in seg.labels.items():
            files = outputs[head]
            written.append(save_label_png(label, files[0]))
            written.append(save_overlay_png(rgb, label, files[1]))
            if save_scores:
                written.append(save_npy_atomic(seg.scores[head], files[2]))
    return written
