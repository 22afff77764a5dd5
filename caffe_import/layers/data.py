"""Data layers of Caffe and its forks, stood in for by net inputs of the same tops.

Caffe's data layers read databases, image lists or video (``Data``, ``ImageData``,
``WindowData``, ``HDF5Data``; SSD's ``AnnotatedData`` and ``VideoData``;
SegNet's ``DenseImageData``; DeepLab's ``ImageSegData``). Here none of them reads anything:
each becomes an input of the net, fed like an ``Input`` layer's tops (``CaffeNet.forward(
data=..., label=...)``), so train/test prototxts of the forks build and run unchanged.

Their shapes come from the layer's own parameters where Caffe fixes them there: the batch size,
``new_height``/``new_width``, ``crop_size`` (``transform_param``), SSD's ``resize_param``,
``is_color`` (3 or 1 channels). Labels are ``(N,)``
for classification layers, ``(N, 1, H, W)`` for SegNet's and DeepLab's segmentation layers.
A shape the parameters do not fix (the channels of an LMDB, HDF5 blobs, SSD's annotation
blob) must be given: ``CaffeNet(..., input_shapes={"data": (1, 3, 300, 300)})``.
``MemoryData`` is a layer of its own (``caffe_import.layers.memory_data``), fed by arrays.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape
from .registry import register

#: data layer type -> its parameter field (where the batch size and sizes are)
DATA_LAYERS = {
    "Data": "data_param", "ImageData": "image_data_param", "WindowData": "window_data_param",
    "HDF5Data": "hdf5_data_param",
    "AnnotatedData": "data_param", "VideoData": "video_data_param",
    "DenseImageData": "dense_image_data_param", "ImageSegData": "image_data_param",
}
_SEGMENTATION = ("DenseImageData", "ImageSegData")


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
    """A data layer as net inputs (see the module docstring)."""

    feeds_net = True

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
        p = _sub(param, DATA_LAYERS[param.type])
        batch = _int(p, "batch_size")
        spatial = self._spatial(param, p)
        color = p is None or "is_color" not in p.DESCRIPTOR.fields_by_name or p.is_color
        channels = None if param.type in ("Data", "AnnotatedData", "HDF5Data",
                                          "VideoData") else (3 if color else 1)
        data = ((batch, channels, *spatial) if batch and channels and spatial
                and param.type != "HDF5Data" else None)
        if param.type in _SEGMENTATION:
            label = (batch, 1, *spatial) if batch and spatial else None
            extra = [(batch, 1, 1, 2) if batch else None]  # ImageSegData's data_dim
        elif param.type in ("AnnotatedData", "HDF5Data", "VideoData"):
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
                                   f"CaffeNet", layer=self.name)
        return list(self.declared)  # type: ignore[arg-type]

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        raise RuntimeError(f"data layer '{self.name}' is fed by the net, not run")
