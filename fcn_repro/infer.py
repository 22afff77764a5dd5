"""Segment image files with a net: label PNG (VOC palette), colour overlay, optional scores.

Each image is preprocessed as the release does for the model's dataset (RGB -> BGR, minus the
BGR mean, full size, batch 1; NYUDv2's HHA and depth images as its data layer makes them), run
through the deploy net, and the argmax over the classes of every score blob is written.

The images (files, or folders: the image files directly inside them) feed the net's input;
a net with several inputs (NYUDv2 colour + HHA) takes the others from ``inputs`` (``--input
hha=DIR``), each paired with its image by file stem. Every image is opened, decoded and paired
before the net is built and before anything is written; each image's files are written all or
none, and ``on_image`` hears of each image as its files are complete.
"""
from __future__ import annotations

import os
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from tqdm import tqdm

from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.io.atomic import atomic_open
from caffe_import.io.text import ParsedNet
from caffe_import.proto.schema import Schema, resolve_schema
from fcn_repro import zoo
from fcn_repro.data import nyud
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


@dataclass(frozen=True)
class ImageDone:
    """One image segmented: its files (all written), and its place in the run."""

    image: Path
    paths: list[Path]
    number: int  #: 1 for the first image
    total: int


#: the file name endings Pillow reads (what a folder given as input is searched for)
IMAGE_SUFFIXES = frozenset(Image.registered_extensions())


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
            keep_scores: bool = False, inputs: Mapping[str, np.ndarray] | None = None) -> Segmentation:
    """Segment one ``H x W x 3`` uint8 RGB image with a CaffeNet (already on ``device``).
    ``inputs``: every input blob made already (``C x H x W`` float32, :func:`input_array`),
    fed instead of ``rgb`` (a two-input net's; ``rgb`` is still the result's image)."""
    device = torch.device(device)
    if inputs is None:
        inputs = {single_input(net): caffe_rgb(rgb, tuple(mean_bgr))}
    heads = list(heads) if heads else score_blobs(net)
    feed = {name: torch.from_numpy(x)[None].to(device, non_blocking=True) for name, x in inputs.items()}
    with torch.inference_mode():
        outs = net.forward(outputs=heads, **feed)
    result = Segmentation(rgb=rgb, labels={})
    for head in heads:
        scores = outs[head][0]
        result.labels[head] = scores.argmax(0).to("cpu", torch.uint8).numpy()
        if keep_scores:
            result.scores[head] = scores.float().cpu().numpy()
    return result


def input_kind(name: str, spec: Any = None) -> str:
    """How a net input is made from an image file: ``hha`` and ``depth`` as NYUDv2's data layer
    makes them (:func:`fcn_repro.data.nyud.preprocess`), anything else ``rgb`` (BGR minus the
    mean). A zoo NYUDv2 model's lone input ``data`` is the modality its name says
    (nyud-fcn32s-hha: HHA, not flipped)."""
    if name in ("hha", "depth"):
        return name
    if spec is not None and spec.dataset == "nyud" and name == "data":
        top = nyud.MODALITIES[nyud.model_options(spec.name)["modality"]][0]
        return top if top in ("hha", "depth") else "rgb"
    return "rgb"


def input_array(kind: str, image: Image.Image, mean_bgr: Sequence[float]) -> np.ndarray:
    """The ``C x H x W`` float32 blob of one image for an input of ``kind`` (:func:`input_kind`)."""
    if kind == "rgb":
        return caffe_rgb(rgb_array(image), tuple(mean_bgr))
    return nyud.preprocess(kind, image)


def expand_images(paths: Sequence[str | os.PathLike]) -> list[Path]:
    """Files as given; a folder gives the image files directly inside it (by the endings Pillow
    reads, sorted by name). A missing path is a ``FileNotFoundError``, a folder with no image a
    :class:`UsageError`."""
    out: list[Path] = []
    for given in map(Path, paths):
        if given.is_dir():
            found = sorted(p for p in given.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise UsageError(f"{given}: a folder with no image file in it")
            out += found
        elif given.is_file():
            out.append(given)
        else:
            raise FileNotFoundError(f"image {given} does not exist")
    return out


def pair_inputs(images: Sequence[Path], inputs: Mapping[str, str | os.PathLike]) -> dict[str, dict[Path, Path]]:
    """Per extra net input: each image's file for it. A folder pairs by file stem (``a.jpg`` with
    the folder's ``a.png``); a file pairs with the one image. Raises :class:`UsageError` naming
    the images with no partner."""
    paired: dict[str, dict[Path, Path]] = {}
    for name, source in inputs.items():
        source = Path(source)
        if source.is_file():
            if len(images) != 1:
                raise UsageError(f"input {name}: one file ({source}) for {len(images)} images; give a "
                                 "folder, whose files pair with the images by name")
            paired[name] = {images[0]: source}
            continue
        if not source.is_dir():
            raise FileNotFoundError(f"input {name}: {source} does not exist")
        by_stem = {p.stem: p for p in sorted(source.iterdir())
                   if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES}
        lonely = [str(p) for p in images if p.stem not in by_stem]
        if lonely:
            raise UsageError(f"input {name}: no file named like {', '.join(lonely[:3])}"
                             f"{' ...' if len(lonely) > 3 else ''} in {source}")
        paired[name] = {p: by_stem[p.stem] for p in images}
    return paired


def _decoded(path: Path) -> Image.Image:
    try:
        return open_image(path)
    except OSError as exc:
        raise ImageError(f"not a readable image ({exc})", path=path) from exc


def check_images(images: Sequence[Path], paired: Mapping[str, Mapping[Path, Path]]) -> None:
    """Decode every image and its partners (an undecodable one is an :class:`ImageError`
    naming it) and check that partners have the image's size, before any work."""
    for path in images:
        size = _decoded(path).size
        for name, files in paired.items():
            other = _decoded(files[path]).size
            if other != size:
                raise ImageError(f"is {other[0]}x{other[1]} but its image {path} is {size[0]}x{size[1]} "
                                 f"(input {name})", path=files[path])


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
          net_param: ParsedNet | None = None, inputs: Mapping[str, str | os.PathLike] | None = None,
          progress: bool = False, on_image: Callable[[ImageDone], Any] | None = None) -> list[Path]:
    """What ``fcn-repro infer`` does. Writes ``<stem>.png`` (labels, VOC palette),
    ``<stem>_overlay.png`` and with ``save_scores`` ``<stem>_scores.npy`` per image (suffixed
    ``_<head>`` for nets with several score blobs), with the stems of :func:`output_stems`;
    returns the written paths. ``images`` are files or folders (:func:`expand_images`);
    ``inputs`` names the files of a net's other inputs (``{"hha": folder}``,
    :func:`pair_inputs`). Missing, undecodable and unpaired images and output name clashes fail
    before the net is built. ``net_param``: the prototxt ``net_path`` read already
    (``parse_net``), not read again. ``progress``: a bar on stderr; ``on_image`` gets an
    :class:`ImageDone` as each image's files are complete (what a stopped run wrote)."""
    stems = output_stems(expand_images(images))
    paired = pair_inputs(list(stems), inputs or {})
    check_images(list(stems), paired)
    caffe_net = zoo.build_net(model=model, net_path=None if net_param is not None else net_path,
                              net_param=net_param, weights=weights, device=device,
                              schema=resolve_schema(schema, fork, proto), precision=precision)
    spec = zoo.get(model) if model is not None else None
    feeds = _feeds(caffe_net, spec, list(paired), mean_bgr)
    heads = score_blobs(caffe_net, spec)
    out = Path(output_dir)
    plan = {path: _output_paths(out, stem, heads, save_scores) for path, stem in stems.items()}
    _check_distinct(plan)
    written: list[Path] = []
    bar = tqdm(plan.items(), desc="infer", unit="image", disable=not progress, file=sys.stderr)
    for number, (path, outputs) in enumerate(bar, 1):
        sources = {name: paired[name][path] if name in paired else path for name in feeds}
        files = _segment_file(caffe_net, sources, feeds, outputs, device=device, heads=heads,
                              save_scores=save_scores)
        written += files
        if on_image is not None:
            on_image(ImageDone(path, files, number, len(plan)))
    return written


def _feeds(net: Any, spec: Any, named: Sequence[str], mean_bgr: Sequence[float] | None
           ) -> dict[str, tuple[str, tuple[float, ...]]]:
    """Per net input, (kind, mean): the input not named in ``inputs`` takes the images
    (``mean_bgr`` overrides its mean), the named ones their files; the model's means, else VOC's."""
    names = list(net.inputs)
    unknown = [n for n in named if n not in names]
    if unknown:
        raise UsageError(f"input {unknown[0]}: the net has no input of that name (its inputs: {', '.join(names)})")
    rest = [n for n in names if n not in named]
    if len(rest) != 1:
        raise UsageError(f"the net takes the inputs {', '.join(names)}: the images feed one, give each "
                         f"other as --input NAME=FILE_OR_FOLDER (inputs={{NAME: path}}); given: "
                         f"{', '.join(named) or 'none'}")

    def mean(name: str) -> tuple[float, ...]:
        if name == rest[0] and mean_bgr is not None:
            return tuple(mean_bgr)
        return tuple(VOC_MEAN_BGR if spec is None else spec.means.get(name, spec.mean))
    return {n: (input_kind(n, spec), mean(n)) for n in [rest[0], *[m for m in names if m in named]]}


def _segment_file(net: Any, sources: Mapping[str, Path], feeds: Mapping[str, tuple[str, tuple[float, ...]]],
                  outputs: Mapping[str, list[Path]], *, device: str | torch.device, heads: Sequence[str],
                  save_scores: bool) -> list[Path]:
    """Segment one image (``sources``: each input's file, the first the image) and write its
    files, all or none: a stop midway removes the files of this image written so far."""
    opened = {name: _decoded(path) for name, path in sources.items()}
    arrays = {name: input_array(kind, opened[name], mean) for name, (kind, mean) in feeds.items()}
    main = next(iter(feeds))
    rgb = rgb_array(opened[main])
    seg = segment(net, rgb, device=device, heads=heads, keep_scores=save_scores, inputs=arrays)
    written: list[Path] = []
    try:
        for head, label in seg.labels.items():
            files = outputs[head]
            written.append(save_label_png(label, files[0]))
            written.append(save_overlay_png(rgb, label, files[1]))
            if save_scores:
                written.append(save_npy_atomic(seg.scores[head], files[2]))
    except BaseException:
        for path in written:
            path.unlink(missing_ok=True)
        raise
    return written
