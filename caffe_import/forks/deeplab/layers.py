"""DeepLab v2's layers (deeplab-public-ver2), which PSPNet (hszhao/PSPNet, built on DeepLab v2)
and DeepLab v1 also have: Interp and MatWrite. PSPNet's ``interp_layer.cpp`` and
``util/interp.cpp`` are byte-identical to DeepLab v2's, and DeepLab v1's Interp reads the same
fields (v1 accepts exactly one of zoom, shrink, or height and width, which this layer also reads);
the ``pspnet`` and ``deeplab-v1`` entries say ``uses=("deeplab",)``. Its ImageSegData becomes
net inputs (``caffe_import.layers.data``).

* **Interp** (``interp_param``): bilinear resizing with corners aligned, of the input cropped by
  ``pad_beg``/``pad_end`` (only <= 0 is allowed, as in the fork). Output size from
  ``height``/``width``, ``zoom_factor`` (``in + (in - 1)(zoom - 1)``), ``shrink_factor``
  (``(in - 1) / shrink + 1``) or both (shrink first); the fork reads them in the order zoom or
  shrink alone, then height and width, then both, so height and width win over the pair.
  Ratios and weights are float32 as in the fork; the same sizes copy the input. Its backward
  is the exact adjoint (autograd here).
* **MatWrite** (``mat_write_param``): DeepLab's test nets save a blob to ``.mat`` files named by
  the model file. Here it writes nothing - a model file cannot make the importer write files;
  read the blob from the net's outputs instead. It has no tops, so nothing else changes.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ...errors import CaffeFormatError
from ...layers.base import CaffeLayer, Shape, check_4d, check_arity
from ...layers.data import SEGMENTATION_LABEL, DataInput, DataKind
from ...layers.registry import register


# ----------------------------------------------------------------------------- Interp
def _axis_weights(size_in: int, size_out: int, device) -> tuple[torch.Tensor, ...]:
    """Per output index: the lower source index, its +1 step (0 at the last row) and the two
    weights, computed in float32 as ``caffe_cpu_interp2`` does."""
    ratio = np.float32(size_in - 1) / np.float32(size_out - 1) if size_out > 1 else np.float32(0)
    pos = np.arange(size_out, dtype=np.float32) * ratio
    low = pos.astype(np.int64)
    step = (low < size_in - 1).astype(np.int64)
    w1 = (pos - low.astype(np.float32)).astype(np.float32)
    w0 = (np.float32(1) - w1).astype(np.float32)
    return tuple(torch.from_numpy(a).to(device) for a in (low, low + step, w0, w1))


def caffe_interp2(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """``caffe_cpu_interp2`` on ``(N, C, H, W)``: ``h0 (w0 a + w1 b) + h1 (w0 c + w1 d)``."""
    h, w = x.shape[2], x.shape[3]
    if (h, w) == (out_h, out_w):
        return x.clone()
    hl, hr, h0, h1 = _axis_weights(h, out_h, x.device)
    wl, wr, w0, w1 = _axis_weights(w, out_w, x.device)
    w0, w1 = w0.to(x.dtype), w1.to(x.dtype)
    rows = w0 * x[..., wl] + w1 * x[..., wr]  # (N, C, H, out_w)
    h0, h1 = h0.to(x.dtype)[:, None], h1.to(x.dtype)[:, None]
    return h0 * rows[..., hl, :] + h1 * rows[..., hr, :]


@register("Interp", fork="deeplab")
class Interp(CaffeLayer):
    """PSPNet / DeepLab v2 bilinear interpolation (see the module docstring)."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        p = param.interp_param
        self.pad_beg, self.pad_end = int(p.pad_beg), int(p.pad_end)
        if self.pad_beg > 0 or self.pad_end > 0:
            raise CaffeFormatError("Interp supports only pad_beg, pad_end <= 0 (cropping)",
                                   layer=param.name)
        shrink, zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
        if not (shrink or zoom or (p.HasField("height") and p.HasField("width"))):
            raise CaffeFormatError("interp_param needs zoom_factor, shrink_factor or height "
                                   "and width", layer=param.name)
        if (shrink and p.shrink_factor < 1) or (zoom and p.zoom_factor < 1):
            raise CaffeFormatError("zoom_factor and shrink_factor must be >= 1",
                                   layer=param.name)
        self.top_shapes(self.bottom_shapes)

    def _out(self, h: int, w: int) -> tuple[int, int]:
        p = self.param.interp_param
        shrink, zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
        if shrink == zoom and p.HasField("height") and p.HasField("width"):
            return int(p.height), int(p.width)  # the fork tries height/width before both
        size = [h, w]
        if shrink:
            size = [(s - 1) // int(p.shrink_factor) + 1 for s in size]
        if zoom:
            size = [s + (s - 1) * (int(p.zoom_factor) - 1) for s in size]
        return size[0], size[1]

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        check_4d(shape, self.name, "Interp")
        h, w = (s + self.pad_beg + self.pad_end for s in shape[2:])
        out = self._out(h, w)
        if min(h, w, *out) <= 0:
            raise CaffeFormatError(f"Interp of {shape} (pads {self.pad_beg}, {self.pad_end}) "
                                   f"gives an empty input or output {out}", layer=self.name)
        return [(shape[0], shape[1], *out)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        out = self.top_shapes([tuple(x.shape)])[0]
        b = -self.pad_beg
        x = x[:, :, b:x.shape[2] + self.pad_end, b:x.shape[3] + self.pad_end]
        return (caffe_interp2(x, out[2], out[3]),)


@register("MatWrite", fork="deeplab")
class MatWrite(CaffeLayer):
    """A sink that writes nothing (see the module docstring)."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.top):
            raise CaffeFormatError("MatWrite has no tops", layer=param.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return []

    def forward(self, *bottoms: torch.Tensor) -> tuple:
        return ()


@register("ImageSegData", fork="deeplab")
class ImageSegData(DataInput):
    """DeepLab's image and label-image data layer, as net inputs (``caffe_import.layers.data``):
    a ``(N, 1, H, W)`` label and its ``data_dim`` ``(N, 1, 1, 2)``."""

    kind = DataKind("image_data_param", label=SEGMENTATION_LABEL)
