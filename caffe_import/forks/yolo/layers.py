"""Layers of the YOLOv3/v4 Caffe ports (darknet2caffe): nearest ``Upsample``
(``upsample_param.scale``) and their pooling rule.

* **Upsample** with one bottom: ``top[n, c, h, w] = bottom[n, c, h / scale, w / scale]``
  (integer division), output ``(H * scale, W * scale)``; the backward sums each
  ``scale x scale`` block. SegNet's two-bottom ``Upsample`` shares the type name: under the
  default mixture the bottom count decides (:meth:`UpsampleNearest.claim`).
* **Pooling**: the ports' Caffe adds one output row and column when ``kernel_h - stride_h`` is
  odd and positive (darknet's size-2, stride-1 max pooling keeps the size); the extra windows
  are clipped to the input like any window past its end. Built with ``fork="yolo"``; with
  no fork named, BVLC's pooling is built unless the net's shapes fit it nowhere and this rule
  everywhere (YOLOv3-tiny: ``caffe_import.net.build.NetBuilder.build``).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ...errors import CaffeFormatError
from ...layers.base import CaffeLayer, Shape, check_4d, check_arity
from ...layers.pooling import Pooling
from ...layers.registry import register


@register("Upsample", fork="yolo")
class UpsampleNearest(CaffeLayer):
    """Nearest-neighbour upsampling by an integer ``scale`` (``type: "Upsample"``, one bottom)."""

    @classmethod
    def claim(cls, param) -> int:
        """0 with two bottoms (SegNet's unpooling), else 1."""
        return 0 if len(param.bottom) == 2 else 1

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        check_4d(bottom_shapes[0], param.name, "Upsample")
        self.scale = int(param.upsample_param.scale)
        if self.scale < 1:
            raise CaffeFormatError(f"upsample scale must be >= 1, got {self.scale}",
                                   layer=param.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        check_4d(bottom_shapes[0], self.name, "Upsample")
        n, c, h, w = bottom_shapes[0]
        return [(n, c, h * self.scale, w * self.scale)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        n, c, h, w = x.shape
        s = self.scale
        y = x[:, :, :, None, :, None].expand(n, c, h, s, w, s)
        return (y.reshape(n, c, h * s, w * s),)


@register("Pooling", fork="yolo")
class DarknetPooling(Pooling):
    """BVLC's Pooling with the ports' extra output row and column (see the module docstring)."""

    def extra_cells(self, kernel: tuple[int, int]) -> int:
        diff = kernel[0] - self.stride[0]  # C's % keeps the sign
        return int(diff > 0 and diff % 2 == 1)
