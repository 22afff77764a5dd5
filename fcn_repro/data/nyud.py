"""NYUDv2 (40 classes of Gupta et al.), as the release's ``NYUDSegDataLayer`` reads it.

Layout::

    root/data/images/img_<id>.png   colour (RGB)
    root/data/depth/img_<id>.png    depth (one channel, e.g. 16-bit millimetres)
    root/data/hha/img_<id>.png      HHA encoding (3 channels, used in file order)
    root/segmentation/img_<id>.mat  variable segmentation: 0 void, 1..40
    root/<split>.txt                train / val / test / trainval (the release's lists ship
                                    with fcn_repro and are used when the file is absent)

Modalities and what each returns as input (keys are the release nets' input blob names):
``color`` -> tensor (blob ``data``); ``depth`` -> 1-channel tensor ``log(d) - 7.844``;
``hha`` -> tensor; ``color-depth`` -> ``{"color", "depth"}``; ``color-hha`` -> ``{"color", "hha"}``.
Colour is flipped to BGR minus (116.190, 97.203, 92.318); HHA is NOT flipped and has
(132.431, 94.076, 118.477) removed in file order.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

import fcn_repro.data.transforms as T
from caffe_import.errors import UsageError
from fcn_repro.data._layout import ASSETS, load_mat_field, read_split
from fcn_repro.data.base import SegmentationDataset, open_image
from fcn_repro.data.registry import register_dataset
from fcn_repro.errors import DatasetError

NYUD_CLASSES = tuple(l.strip() for l in (ASSETS / "nyud" / "classes.txt").read_text().splitlines() if l.strip())[:40]

LAYOUT = """  <root>/data/images/img_<id>.png
  <root>/data/depth/img_<id>.png
  <root>/data/hha/img_<id>.png
  <root>/segmentation/img_<id>.mat  (variable segmentation: 0 void, 1..40)
  <root>/<split>.txt  (train, val, test; the release's lists are used when absent)"""


#: NYUDv2 modality -> the input blobs its nets take (and the dataset gives), in top order
MODALITIES: dict[str, tuple[str, ...]] = {
    "color": ("color",), "depth": ("depth",), "hha": ("hha",),
    "color-depth": ("color", "depth"), "color-hha": ("color", "hha"),
}
#: the release's own spelling (``nyud-fcn32s-color-d``) -> the name used here
MODALITY_ALIASES = {"color-d": "color-depth"}
#: a release NYUDv2 model name: ``nyud-fcn<stride>s-<modality>``
_NYUD_MODEL = re.compile(r"nyud-fcn\d+s-(?P<modality>.+)")


def canonical_modality(modality: str) -> str:
    """``modality`` as a key of :data:`MODALITIES` (``color-d`` -> ``color-depth``); an unknown
    one is a :class:`UsageError` listing the known."""
    name = MODALITY_ALIASES.get(modality, modality)
    if name not in MODALITIES:
        raise UsageError(f"nyud: unknown modality {modality!r}; one of {', '.join(MODALITIES)}")
    return name


def model_options(model: str | None) -> dict[str, Any]:
    """``{"modality": ...}`` a release NYUDv2 model's name implies (``nyud-fcn32s-color-d`` ->
    ``color-depth``); ``color`` for any other name (a custom net fed one colour image)."""
    match = _NYUD_MODEL.fullmatch(model or "")
    named = MODALITY_ALIASES.get(match["modality"], match["modality"]) if match else "color"
    return {"modality": named if named in MODALITIES else "color"}


def preprocess(top: str, image: Image.Image) -> np.ndarray:
    """One NYUDv2 input as the release's data layer makes it (``C x H x W`` float32): colour
    flipped to BGR minus its mean, depth ``log(d) - 7.844``, HHA minus its mean unflipped."""
    if top == "color":
        return T.caffe_rgb(T.rgb_array(image), T.NYUD_COLOR_MEAN_BGR)
    if top == "depth":
        return T.caffe_log_depth(np.asarray(image))
    if top == "hha":
        return T.caffe_unflipped(np.asarray(image.convert("RGB")), T.NYUD_HHA_MEAN)
    raise ValueError(f"nyud: unknown top {top!r}")


@register_dataset("nyud", train_split="trainval", eval_split="test",
                  model_options=model_options)
class NYUDSegmentation(SegmentationDataset):
    """NYUDv2 40-class segmentation in one of the modalities of :data:`MODALITIES`."""

    name = "nyud"
    layout = LAYOUT
    num_classes = {None: 40}
    class_names = {None: NYUD_CLASSES}

    def __init__(self, root: str | Path, split: str, *, modality: str = "color",
                 limit: int | None = None) -> None:
        self.modality = canonical_modality(modality)
        self.tops = MODALITIES[self.modality]
        super().__init__(root, split, limit=limit)

    def _read_ids(self) -> list[str]:
        path = self.root / f"{self.split}.txt"
        shipped = ASSETS / "nyud" / f"{self.split}.txt"
        if not path.exists() and shipped.exists():
            path = shipped
        return read_split(path, self.name, self.layout)

    def image_path(self, idx: str) -> Path:
        return self.root / "data" / "images" / f"img_{idx}.png"

    def load_top(self, top: str, idx: str) -> torch.Tensor:
        if top not in ("color", "depth", "hha"):
            raise ValueError(f"nyud: unknown top {top!r}")
        path = self.image_path(idx) if top == "color" else self.root / "data" / top / f"img_{idx}.png"
        return T.image_tensor(preprocess(top, open_image(self._require(path))))

    def load_inputs(self, idx: str) -> torch.Tensor | dict[str, torch.Tensor]:
        if len(self.tops) == 1:
            return self.load_top(self.tops[0], idx)
        return {top: self.load_top(top, idx) for top in self.tops}

    def load_labels(self, idx: str) -> torch.Tensor:
        path = self.root / "segmentation" / f"img_{idx}.mat"
        seg = np.asarray(load_mat_field(path, "segmentation", self.name, self.layout))
        if seg.ndim != 2:
            raise DatasetError(f"nyud: segmentation is not 2-D (shape {seg.shape})", path=path)
        return T.label_tensor(T.shift_labels(seg))
