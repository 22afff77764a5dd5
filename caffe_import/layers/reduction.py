"""Reduction (``reduction_param``): SUM, ASUM, SUMSQ or MEAN of all axes from ``axis`` on.

The top keeps the axes before ``axis`` (default 0, giving a 0-axis scalar). The result is
multiplied by ``coeff``; for MEAN Caffe multiplies by ``coeff / dim`` computed in float32 (a
multiplication by the reciprocal, not a division by ``dim``). Unlike ``torch.sum(dim=...)``
only trailing axes can be reduced.
"""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np
import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, canonical_axis, f32, DTYPE_FLOAT32
from .registry import register

SUM, ASUM, SUMSQ, MEAN = 1, 2, 3, 4


@register("Reduction")
class Reduction(CaffeLayer):
    #: float32 even under precision='fast': sums over whole axes
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(bottom_shapes) != 1 or len(param.top) != 1:
            raise CaffeFormatError(f"Reduction takes 1 bottom and 1 top, got "
                                   f"{len(bottom_shapes)} and {len(param.top)}", layer=param.name)
        p = param.reduction_param
        self.op = int(p.operation)
        if self.op not in (SUM, ASUM, SUMSQ, MEAN):
            raise CaffeFormatError(f"unknown reduction operation {self.op}", layer=param.name)
        self.axis = canonical_axis(int(p.axis), len(self.bottom_shapes[0]), param.name)
        self.coeff = f32(p.coeff)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])[:self.axis]]

    def _factor(self, shape: Shape) -> float:
        if self.op == MEAN:
            dim = math.prod(shape[self.axis:])
            return f32(np.float32(self.coeff) / np.float32(dim)) if dim else float("nan")
        return self.coeff

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        flat = x.reshape(*x.shape[:self.axis], -1)
        if self.op == ASUM:
            flat = flat.abs()
        elif self.op == SUMSQ:
            flat = flat * flat
        y = flat.sum(dim=-1)
        factor = self._factor(tuple(x.shape))
        if factor != 1.0:
            y = y * factor
        return (y,)
