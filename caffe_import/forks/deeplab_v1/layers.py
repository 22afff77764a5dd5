"""DeepLab v1's own layer (deeplab-public, read from TheLegendAli/DeepLab-Context): Padding. Its
``hole`` is dilation (``caffe_import.layers.conv``); its Interp and MatWrite are DeepLab v2's
(``caffe_import/forks/deeplab``; the entry says ``uses=("deeplab",)``; v1's Interp accepts
exactly one of zoom, shrink, or height and width, which that layer also reads).

* **Padding** (``padding_param``: pad_beg, pad_end; both >= 0 or both <= 0): zero padding, or
  cropping, of H and W by ``pad_beg`` before and ``pad_end`` after:
  ``top[n, c, h, w] = bottom[n, c, h - pad_beg, w - pad_beg]``. Backward: the adjoint.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ...errors import CaffeFormatError
from ...layers.base import CaffeLayer, Shape, check_4d, check_arity
from ...layers.registry import register


@register("Padding", fork="deeplab-v1")
class Padding(CaffeLayer):
    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        p = param.padding_param
        self.beg, self.end = int(p.pad_beg), int(p.pad_end)
        if not ((self.beg >= 0 and self.end >= 0) or (self.beg <= 0 and self.end <= 0)):
            raise CaffeFormatError(f"pad_beg {self.beg} and pad_end {self.end} must be both "
                                   f">= 0 (padding) or both <= 0 (cropping)", layer=param.name)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        check_4d(shape, self.name, "Padding")
        h, w = (s + self.beg + self.end for s in shape[2:])
        if h <= 0 or w <= 0:
            raise CaffeFormatError(f"padding {self.beg}, {self.end} leaves nothing of {shape}",
                                   layer=self.name)
        return [(shape[0], shape[1], h, w)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(x.shape)])
        return (F.pad(x, [self.beg, self.end, self.beg, self.end]),)
