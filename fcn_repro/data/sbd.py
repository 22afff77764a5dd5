"""SBD (Hariharan et al.'s extended PASCAL labels), as the release's ``SBDDSegDataLayer`` reads it.

Layout (``root`` is SBD's ``dataset`` folder)::

    root/img/<id>.jpg
    root/cls/<id>.mat     MATLAB struct GTcls with field Segmentation (class 0..20 per pixel)
    root/<split>.txt      train / val ids
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from numpy.typing import ArrayLike

import fcn_repro.data.transforms as T
from fcn_repro.data._layout import load_mat_field, read_split
from fcn_repro.data.base import SegmentationDataset, open_image
from fcn_repro.data.registry import register_dataset
from fcn_repro.data.voc import VOC_CLASSES
from fcn_repro.errors import DatasetError

LAYOUT = """  <root>/img/<id>.jpg
  <root>/cls/<id>.mat   (struct GTcls, field Segmentation: class indices 0..20)
  <root>/<split>.txt    (train, val)
(<root> is SBD's 'dataset' folder)"""


@register_dataset("sbd", train_split="train", eval_split="val")
class SBDSegmentation(SegmentationDataset):
    """SBD class segmentation: the VOC classes, labels from ``GTcls.Segmentation`` as uint8."""

    name = "sbd"
    layout = LAYOUT
    num_classes = {None: 21}
    class_names = {None: VOC_CLASSES}

    def __init__(self, root: str | Path, split: str, *,
                 mean: ArrayLike = T.VOC_MEAN_BGR, limit: int | None = None) -> None:
        self.mean = mean
        super().__init__(root, split, limit=limit)

    def _read_ids(self) -> list[str]:
        return read_split(self.root / f"{self.split}.txt", self.name, self.layout)

    def image_path(self, idx: str) -> Path:
        return self.root / "img" / f"{idx}.jpg"

    def label_path(self, idx: str) -> Path:
        return self.root / "cls" / f"{idx}.mat"

    def load_inputs(self, idx: str) -> torch.Tensor:
        im = open_image(self._require(self.image_path(idx)))
        return T.image_tensor(T.caffe_rgb(T.rgb_array(im), self.mean))

    def load_labels(self, idx: str) -> torch.Tensor:
        path = self.label_path(idx)
        gt = load_mat_field(path, "GTcls", self.name, self.layout)
        if gt.dtype.names is None or "Segmentation" not in gt.dtype.names:
            raise DatasetError("sbd: GTcls is not a struct with a Segmentation field", path=path)
        seg = np.asarray(gt["Segmentation"].flat[0])
        if seg.ndim != 2:
            raise DatasetError(f"sbd: GTcls.Segmentation is not 2-D (shape {seg.shape})", path=path)
        return T.label_tensor(seg.astype(np.uint8))
