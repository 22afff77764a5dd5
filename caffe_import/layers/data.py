"""Data layers of Caffe and its forks, stood in for by net inputs of the same tops.

Caffe's data layers read databases, image lists or video (``Data``, ``ImageData``,
``WindowData``, ``HDF5Data``; the forks' units add theirs as subclasses with their own
:class:`DataKind`: SSD's ``AnnotatedData`` and ``VideoData``, SegNet's ``DenseImageData``,
DeepLab's ``ImageSegData``). Unless the net is built to read data (``CaffeNet(...,
data=True)``: ``Data``, ``ImageData`` and ``WindowData`` then read, see ``READERS``), none of
them reads anything: each becomes an input of the net, fed like an ``Input`` layer's tops
(``CaffeNet.forward(data=..., label=...)``), so train/test prototxts of the forks build and
run unchanged.

Their shapes come from the layer's own parameters where Caffe fixes them there: the batch size,
``new_height``/``new_width``, ``crop_size`` (``transform_param``), SSD's ``resize_param``,
``is_color`` (3 or 1 channels). Labels are ``(N,)``
for classification layers, ``(N, 1, H, W)`` for SegNet's and DeepLab's segmentation layers.
A shape the parameters do not fix (the channels of an LMDB, HDF5 blobs, SSD's annotation
blob) must be given: ``CaffeNet(..., input_shapes={"data": (1, 3, 300, 300)})``.
``MemoryData`` is a layer of its own (``caffe_import.layers.memory_data``), fed by arrays;
so is ``HDF5Data`` (``caffe_import.layers.hdf5_data``), which reads when the net is built with
data and is an input like these otherwise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Optional, Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape
from .data_read import DataLayer, ImageDataLayer, ReadingDataLayer
from .registry import register
from .window_data import WindowDataLayer

CLASS_LABEL, SEGMENTATION_LABEL = "class", "segmentation"

#: BVLC's data layer types that read their source in a net built with ``data=True``
#: (``caffe_import.layers.data_read``, ``window_data``); elsewhere they are net inputs
READERS: dict[str, type[ReadingDataLayer]] = {
    "Data": DataLayer,
    "ImageData": ImageDataLayer,
    "WindowData": WindowDataLayer,
}


@dataclass(frozen=True)
class DataKind:
    """What a data layer's parameters fix of its tops. ``param_field``: where the batch size
    and sizes are; ``color_channels``: ``is_color`` fixes the data's channels (3 or 1), else
    the database does (``None``: must be given); ``label``: ``"class"`` (``(N,)``),
    ``"segmentation"`` (``(N, 1, H, W)``, then ``data_dim`` ``(N, 1, 1, 2)``) or None (the
    label blob's shape is the database's)."""

    param_field: str
    color_channels: bool = True
    label: Optional[str] = CLASS_LABEL


#: BVLC's data layer types -> what their parameters fix
DATA_LAYERS = {
    "Data": DataKind("data_param", color_channels=False),
    "ImageData": DataKind("image_data_param"),
    "WindowData": DataKind("window_data_param"),
}


def _sub(msg, name: str):
    """``msg.<name>`` when the schema has that field and the file sets it, else None."""
    if msg is None or name not in msg.DESCRIPTOR.fields_by_name or not msg.HasField(name):
        return None
    return getattr(msg, name)


def _int(msg, name: str) -> int | None:
    value = _sub(msg, name)
    return None if value is None or int(value) <= 0 else int(value)


@register(*DATA_LAYERS)
class DataInput(CaffeLayer):
    """A data layer as net inputs (see the module docstring). A fork's data layer is a
    subclass registered for the fork, with its ``kind``."""

    feeds_net = True
    kind: Optional[DataKind] = None  # None: BVLC's, by type (DATA_LAYERS)

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom):
            raise CaffeFormatError(f"{param.type} layers take no bottoms", layer=param.name)
        self.declared = self._shapes(param)

    def _spatial(self, param, p) -> tuple[int, int] | None:
        crop = _int(_sub(param, "transform_param"), "crop_size")
        if crop is None and p is not None:
            crop = _int(p, "crop_size")  # WindowData's legacy field
        if crop is not None:
            return crop, crop
        h, w = _int(p, "new_height"), _int(p, "new_width")
        if h and w:
            return h, w
        resize = _sub(_sub(param, "transform_param"), "resize_param")  # SSD
        h, w = _int(resize, "height"), _int(resize, "width")
        return (h, w) if h and w else None

    def _shapes(self, param) -> list[Shape | None]:
        kind = self.kind or DATA_LAYERS[param.type]
        p = _sub(param, kind.param_field)
        batch = _int(p, "batch_size")
        spatial = self._spatial(param, p)
        color = p is None or "is_color" not in p.DESCRIPTOR.fields_by_name or p.is_color
        channels = (3 if color else 1) if kind.color_channels else None
        data = (batch, channels, *spatial) if batch and channels and spatial else None
        if kind.label == SEGMENTATION_LABEL:
            label = (batch, 1, *spatial) if batch and spatial else None
            extra = [(batch, 1, 1, 2) if batch else None]  # ImageSegData's data_dim
        elif kind.label is None:
            label, extra = None, []
        else:
            label, extra = ((batch,) if batch else None), []
        return ([data, label] + extra + [None] * len(param.top))[:len(param.top)]

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        missing = [t for t, s in zip(self.param.top, self.declared) if s is None]
        if missing:
            raise CaffeFormatError(f"{self.param.type} is replaced by net inputs, but its "
                                   f"parameters do not fix the shape of {missing}: pass "
                                   f"input_shapes={{{missing[0]!r}: (N, C, H, W), ...}} to "
                                   f"CaffeNet" + (" (or data=True to read the layer's "
                                                  "source)" if self.kind is None and
                                                  self.param.type in READERS else ""),
                                   layer=self.name)
        return list(self.declared)  # type: ignore[arg-type]

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise RuntimeError(f"data layer '{self.name}' is fed by the net, not run")
