"""SIFT Flow semantic + geometric labelling, as the release's ``SIFTFlowSegDataLayer`` reads it.

Layout::

    root/Images/spatial_envelope_256x256_static_8outdoorcategories/<id>.jpg
    root/SemanticLabels/spatial_envelope_256x256_static_8outdoorcategories/<id>.mat   (S: 0 void, 1..33)
    root/GeoLabels/spatial_envelope_256x256_static_8outdoorcategories/<id>.mat        (S: -1 void, 1..3)
    root/<split>.txt   trainval / test (the release's lists ship with fcn_repro and are used
                       when the file is absent)

Labels, as the release makes them: geometric -1 is first set to 0; then both maps are cast to
uint8 and shifted down by one, so classes become 0..32 / 0..2 and 0 wraps to 255 (void).
Items are ``(image, {"sem": ..., "geo": ...})`` (the net's label blobs), scored on the heads
``score_sem`` and ``score_geo``. Cow, desert and moon never occur in the test set; the paper
leaves them out of the class averages (``exclude_classes``).
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

SUBDIR = "spatial_envelope_256x256_static_8outdoorcategories"


def _class_list(section: str) -> tuple[str, ...]:
    text = (ASSETS / "sift-flow" / "classes.txt").read_text()
    block = text.split(section, 1)[1]
    names = []
    for line in block.splitlines()[1:]:
        m = re.match(r"^\d+\s+(\S.*)$", line.strip())
        if m:
            names.append(m.group(1))
        elif names and line.strip():
            break
    return tuple(names)


SEMANTIC_CLASSES = _class_list("Semantic:")
GEOMETRIC_CLASSES = _class_list("Geometric:")
ABSENT_FROM_TEST = tuple(SEMANTIC_CLASSES.index(c) for c in ("cow", "desert", "moon"))

LAYOUT = f"""  <root>/Images/{SUBDIR}/<id>.jpg
  <root>/SemanticLabels/{SUBDIR}/<id>.mat  (variable S: 0 void, 1..33)
  <root>/GeoLabels/{SUBDIR}/<id>.mat       (variable S: -1 void, 1..3)
  <root>/<split>.txt  (trainval, test; the release's lists are used when absent)"""


@register_dataset("siftflow", train_split="trainval", eval_split="test")
class SIFTFlowSegmentation(SegmentationDataset):
    """SIFT Flow: 33 semantic and 3 geometric classes, labels ``{"sem", "geo"}``."""

    name = "siftflow"
    layout = LAYOUT
    score_heads = {"score_sem": "sem", "score_geo": "geo"}
    num_classes = {"sem": 33, "geo": 3}
    class_names = {"sem": SEMANTIC_CLASSES, "geo": GEOMETRIC_CLASSES}
    exclude_classes = {"sem": ABSENT_FROM_TEST}

    def __init__(self, root: str | Path, split: str, *,
                 mean: ArrayLike = T.SIFTFLOW_MEAN_BGR, limit: int | None = None) -> None:
        self.mean = mean
        super().__init__(root, split, limit=limit)

    def _read_ids(self) -> list[str]:
        path = self.root / f"{self.split}.txt"
        shipped = ASSETS / "sift-flow" / f"{self.split}.txt"
        if not path.exists() and shipped.exists():
            path = shipped
        return read_split(path, self.name, self.layout)

    def image_path(self, idx: str) -> Path:
        return self.root / "Images" / SUBDIR / f"{idx}.jpg"

    def label_path(self, idx: str, kind: str) -> Path:
        folder = {"sem": "SemanticLabels", "geo": "GeoLabels"}[kind]
        return self.root / folder / SUBDIR / f"{idx}.mat"

    def load_inputs(self, idx: str) -> torch.Tensor:
        im = open_image(self._require(self.image_path(idx)))
        return T.image_tensor(T.caffe_rgb(T.rgb_array(im), self.mean))

    def _load(self, idx: str, kind: str) -> torch.Tensor:
        path = self.label_path(idx, kind)
        s = np.array(load_mat_field(path, "S", self.name, self.layout))
        if s.ndim != 2:
            raise DatasetError(f"siftflow: S is not 2-D (shape {s.shape})", path=path)
        if kind == "geo":
            s[s == -1] = 0
        return T.label_tensor(T.shift_labels(s))

    def load_labels(self, idx: str) -> dict[str, torch.Tensor]:
        return {"sem": self._load(idx, "sem"), "geo": self._load(idx, "geo")}
