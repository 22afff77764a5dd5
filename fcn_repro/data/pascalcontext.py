"""PASCAL-Context, 59 classes + background, as the release's ``PASCALContextSegDataLayer`` reads it.

Layout (``root`` holds both the VOC2010 images and the PASCAL-Context annotations)::

    root/VOC2010/JPEGImages/<id>.jpg
    root/VOC2010/ImageSets/Main/<split>.txt   train / val
    root/trainval/<id>.mat                    variable LabelMap: the full 459-label annotation

The full labels are mapped to the 59-class task: label ``k`` (1..59) where the full label's name
is the k-th of the 59 names, 0 (background, a scored class: 60 outputs) everywhere else. There
is no void. Three 59-task names differ from the full list's (diningtable/table,
bedcloth/bedclothes, clothes/cloth) and spaces are dropped from names before matching, as the
release does. The class lists ship with fcn_repro. Images use the mean (104.007, 116.669, 122.679).
"""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike

import fcn_repro.data.transforms as T
from fcn_repro.data._layout import ASSETS, load_mat_field, read_split
from fcn_repro.data.base import SegmentationDataset, open_image
from fcn_repro.data.registry import register_dataset
from fcn_repro.errors import DatasetError

RENAMED = {"diningtable": "table", "bedcloth": "bedclothes", "clothes": "cloth"}


def _numbered(path: Path) -> list[tuple[int, str]]:
    out = []
    for line in path.read_text().splitlines():
        m = re.match(r"^\s*(\d+)\s*:\s*(.+?)\s*$", line)
        if m:
            out.append((int(m.group(1)), m.group(2)))
    return out


FULL_CLASSES = _numbered(ASSETS / "pascal-context" / "classes-400.txt")
CONTEXT59_CLASSES = tuple(name for _, name in _numbered(ASSETS / "pascal-context" / "classes-59.txt"))


def full_to_59_table() -> np.ndarray:
    """Look-up table: full label value (0..459) -> 59-task label (0 background, 1..59)."""
    by_name = {name.replace(" ", ""): number for number, name in FULL_CLASSES}
    table = np.zeros(max(by_name.values()) + 1, dtype=np.uint8)
    for k, name in enumerate(CONTEXT59_CLASSES[1:], start=1):
        full_name = RENAMED.get(name, name).replace(" ", "")
        table[by_name[full_name]] = k
    return table


FULL_TO_59 = full_to_59_table()

LAYOUT = """  <root>/VOC2010/JPEGImages/<id>.jpg
  <root>/VOC2010/ImageSets/Main/<split>.txt  (train, val)
  <root>/trainval/<id>.mat  (variable LabelMap: full PASCAL-Context labels 1..459)"""


def map_to_59(label_map: np.ndarray) -> np.ndarray:
    """Full PASCAL-Context labels -> the 59-class task (0 for anything not among the 59)."""
    lab = np.asarray(label_map).astype(np.int64)
    out = np.zeros(lab.shape, dtype=np.uint8)
    inside = (lab >= 0) & (lab < FULL_TO_59.size)
    out[inside] = FULL_TO_59[lab[inside]]
    return out


@register_dataset("pascalcontext", train_split="train", eval_split="val")
class PascalContextSegmentation(SegmentationDataset):
    """PASCAL-Context 59 classes + background (60 scored classes, no void)."""

    name = "pascalcontext"
    layout = LAYOUT
    num_classes = {None: 60}
    class_names = {None: CONTEXT59_CLASSES}

    def __init__(self, root: str | Path, split: str, *,
                 mean: ArrayLike = T.PASCALCONTEXT_MEAN_BGR,
                 voc_dir: str | Path | None = None, limit: int | None = None) -> None:
        """``voc_dir``: where ``VOC2010`` lives when not under ``root`` (a VOCdevkit folder, or
        the VOC2010 folder itself)."""
        self.mean = mean
        if voc_dir is None:
            self.voc = Path(root) / "VOC2010"
        else:
            voc_dir = Path(voc_dir)
            self.voc = voc_dir if voc_dir.name == "VOC2010" else voc_dir / "VOC2010"
        super().__init__(root, split, limit=limit)

    def _read_ids(self) -> list[str]:
        return read_split(self.voc / "ImageSets" / "Main" / f"{self.split}.txt",
                          self.name, self.layout)

    def image_path(self, idx: str) -> Path:
        return self.voc / "JPEGImages" / f"{idx}.jpg"

    def load_inputs(self, idx: str) -> torch.Tensor:
        im = open_image(self._require(self.image_path(idx)))
        return T.image_tensor(T.caffe_rgb(T.rgb_array(im), self.mean))

    def load_labels(self, idx: str) -> torch.Tensor:
        path = self.root / "trainval" / f"{idx}.mat"
        full = np.asarray(load_mat_field(path, "LabelMap", self.name, self.layout))
        if full.ndim != 2:
            raise DatasetError(f"pascalcontext: LabelMap is not 2-D (shape {full.shape})", path=path)
        return T.label_tensor(map_to_59(full))
