"""PASCAL VOC 2011 / 2012 segmentation, as the release's ``VOCSegDataLayer`` reads it.

Layout (``root`` is a year folder such as ``VOCdevkit/VOC2011``)::

    root/JPEGImages/<id>.jpg
    root/SegmentationClass/<id>.png          palette PNG, value = class 0..20, 255 = void
    root/ImageSets/Segmentation/<split>.txt  one id per line (train, val, trainval, seg11valid)

``split="seg11valid"`` (the 736 VOC2011 val images not in SBD train, on which the paper and the
release report) is read from ``ImageSets/Segmentation/seg11valid.txt`` if that file exists,
else from the list shipped with this package.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike

import fcn_repro.data.transforms as T
from fcn_repro.data._layout import ASSETS, read_split
from fcn_repro.data.base import SegmentationDataset, open_image
from fcn_repro.data.registry import register_dataset

SEG11VALID = ASSETS / "pascal" / "seg11valid.txt"
VOC_CLASSES = tuple(line.strip() for line in (ASSETS / "pascal" / "classes.txt").read_text().splitlines()[:21])

LAYOUT = """  <root>/JPEGImages/<id>.jpg
  <root>/SegmentationClass/<id>.png  (palette PNG: 0..20 classes, 255 void)
  <root>/ImageSets/Segmentation/<split>.txt
(<root> is a VOC year folder, e.g. VOCdevkit/VOC2011; split 'seg11valid' falls back to the
list shipped with fcn_repro)"""


# the release trained its VOC models on SBD train and scored VOC2011 seg11valid
@register_dataset("voc", train_split="train", eval_split="seg11valid")
class VOCSegmentation(SegmentationDataset):
    """PASCAL VOC segmentation: 21 classes (background + 20), 255 = void."""

    name = "voc"
    layout = LAYOUT
    num_classes = {None: 21}
    class_names = {None: VOC_CLASSES}

    def __init__(self, root: str | Path, split: str, *,
                 mean: ArrayLike = T.VOC_MEAN_BGR, limit: int | None = None) -> None:
        self.mean = mean
        super().__init__(root, split, limit=limit)

    def _read_ids(self) -> list[str]:
        path = self.root / "ImageSets" / "Segmentation" / f"{self.split}.txt"
        if self.split == "seg11valid" and not path.exists():
            path = SEG11VALID
        return read_split(path, self.name, self.layout)

    def image_path(self, idx: str) -> Path:
        return self.root / "JPEGImages" / f"{idx}.jpg"

    def label_path(self, idx: str) -> Path:
        return self.root / "SegmentationClass" / f"{idx}.png"

    def load_inputs(self, idx: str) -> torch.Tensor:
        im = open_image(self._require(self.image_path(idx)))
        return T.image_tensor(T.caffe_rgb(T.rgb_array(im), self.mean))

    def load_labels(self, idx: str) -> torch.Tensor:
        # The palette PNG's pixel values are the class indices (no colour lookup).
        im = open_image(self._require(self.label_path(idx)))
        return T.label_tensor(np.asarray(im, dtype=np.uint8))
