"""The base of every dataset class: ids from a split list, per-item loading, the heads it scores."""
from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset

from caffe_import.errors import UsageError
from fcn_repro.data._layout import limit_ids, require
from fcn_repro.errors import DatasetLayoutError


class SegmentationDataset(Dataset):
    """A split of a segmentation dataset in the release's on-disk layout.

    ``dataset[i]`` is ``(image, label)``: image float32 ``C x H x W`` preprocessed as the
    release does (see :mod:`fcn_repro.data.transforms`), label int64 ``H x W`` with 255 = void.
    Datasets whose nets take several inputs return a dict of inputs keyed by the net's input
    blob names; those with several label maps return a dict keyed by the net's label blob names.

    Class attributes describe the matching nets: ``score_heads`` maps each score blob of the
    net to the label it is scored against (``None``: the single label), ``num_classes`` maps the
    label name to its number of classes, ``exclude_classes`` the classes the release leaves out
    of its class averages.
    """

    name: str = ""
    layout: str = ""
    score_heads: Mapping[str, str | None] = {"score": None}
    num_classes: Mapping[str | None, int] = {}
    class_names: Mapping[str | None, Sequence[str]] = {}
    exclude_classes: Mapping[str | None, Sequence[int]] = {}

    def __init__(self, root: str | Path, split: str, *, limit: int | None = None) -> None:
        if limit is not None and limit < 1:  # a zero-image split would score as "no result"
            raise UsageError(f"{self.name}: limit must be at least 1 image (got {limit})")
        self.root = Path(root)
        if not self.root.is_dir():
            raise DatasetLayoutError(
                f"{self.name}: dataset folder {self.root} does not exist.\n"
                f"The {self.name} dataset is read from this layout:\n{self.layout}")
        self.split = split
        self.ids: list[str] = limit_ids(self._read_ids(), limit)

    # -- to override -------------------------------------------------------------------
    def _read_ids(self) -> list[str]:
        raise NotImplementedError

    def image_path(self, idx: str) -> Path:
        raise NotImplementedError

    def load_inputs(self, idx: str) -> torch.Tensor | dict[str, torch.Tensor]:
        raise NotImplementedError

    def load_labels(self, idx: str) -> torch.Tensor | dict[str, torch.Tensor]:
        raise NotImplementedError

    # -- common --------------------------------------------------------------------------
    def _require(self, path: Path) -> Path:
        return require(path, self.name, self.layout)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, i: int) -> tuple[Any, Any]:
        idx = self.ids[i]
        return self.load_inputs(idx), self.load_labels(idx)

    def rgb(self, i: int) -> np.ndarray:
        """The raw ``H x W x 3`` uint8 RGB image of item ``i`` (for overlays)."""
        with Image.open(self._require(self.image_path(self.ids[i]))) as im:
            return np.asarray(im.convert("RGB"), dtype=np.uint8)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(root={str(self.root)!r}, split={self.split!r}, n={len(self)})"


def open_image(path: Path) -> Image.Image:
    """Open and fully load an image file (so the file handle is closed at once)."""
    with Image.open(path) as im:
        im.load()
        return im.copy()
