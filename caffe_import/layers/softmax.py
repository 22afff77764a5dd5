"""Softmax (``softmax_param.axis``, default 1).

Caffe subtracts the maximum along the axis, exponentiates, sums and divides (a true division,
not a multiplication by the reciprocal). ``torch.softmax`` gives the same mathematics with
different low-order bits; this layer spells out Caffe's steps so results agree to an ulp or two
(the sum's order is BLAS-dependent in Caffe, so exact bits are not attainable in general).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, canonical_axis, DTYPE_FLOAT32
from .registry import register


def caffe_softmax(x: torch.Tensor, axis: int) -> torch.Tensor:
    """``exp(x - max) / sum(exp(x - max))`` along ``axis``, in Caffe's order of operations."""
    e = torch.exp(x - x.amax(dim=axis, keepdim=True))
    return e / e.sum(dim=axis, keepdim=True)


@register("Softmax")
class Softmax(CaffeLayer):
    #: float32 even under precision='fast': probabilities are compared and summed
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(bottom_shapes) != 1 or len(param.top) != 1:
            raise CaffeFormatError(f"Softmax takes 1 bottom and 1 top, got {len(bottom_shapes)} "
                                   f"and {len(param.top)}", layer=param.name)
        self.axis = canonical_axis(int(param.softmax_param.axis), len(self.bottom_shapes[0]),
                                   param.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        return (caffe_softmax(x, self.axis),)
