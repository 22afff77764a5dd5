"""InnerProduct (``inner_product_param``): a fully connected layer over the flattened trailing axes.

Caffe flattens every axis from ``axis`` (default 1) on, in C order, into ``K`` inputs, and keeps
the axes before it: the top is ``bottom.shape[:axis] + (num_output,)``. The weight is
``(num_output, K)`` (the layout of ``nn.Linear.weight``) or ``(K, num_output)`` with
``transpose: true``; the bias ``(num_output,)`` is added after the product. ``K`` is fixed when
the layer is built: a later bottom must flatten to the same ``K``. An absent ``weight_filler``
is the constant 0, as in Caffe.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, canonical_axis, DTYPE_REDUCED
from .fillers import fill_or_constant
from .registry import register


@register("InnerProduct")
class InnerProduct(CaffeLayer):
    dtype_policy = DTYPE_REDUCED

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        p = param.inner_product_param
        if len(bottom_shapes) != 1 or len(param.top) != 1:
            raise CaffeFormatError(f"InnerProduct takes 1 bottom and 1 top, got "
                                   f"{len(bottom_shapes)} and {len(param.top)}", layer=param.name)
        shape = self.bottom_shapes[0]
        self.axis = canonical_axis(int(p.axis), len(shape), param.name)
        self.num_output = int(p.num_output)
        if self.num_output <= 0:
            raise CaffeFormatError("num_output must be given and positive", layer=param.name)
        self.k = math.prod(shape[self.axis:])
        self.transpose = bool(p.transpose)
        self.bias_term = bool(p.bias_term)
        self.add_blob((self.k, self.num_output) if self.transpose else (self.num_output, self.k))
        if self.bias_term:
            self.add_blob((self.num_output,))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``weight_filler`` and ``bias_filler`` (absent: constant 0)."""
        p = self.param.inner_product_param
        fill_or_constant(self.blobs[0].data, p, "weight_filler", 0.0, self.name)
        if self.bias_term:
            fill_or_constant(self.blobs[1].data, p, "bias_filler", 0.0, self.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if len(shape) <= self.axis - 1 or math.prod(shape[self.axis:]) != self.k:
            raise CaffeFormatError(f"bottom of shape {shape} flattens from axis {self.axis} to "
                                   f"{math.prod(shape[self.axis:])} inputs, the layer was built "
                                   f"for {self.k}", layer=self.name)
        return [(*shape[:self.axis], self.num_output)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        (out,) = self.top_shapes([tuple(x.shape)])
        blobs = self.blobs
        flat = x.reshape(-1, self.k)
        y = flat @ blobs[0] if self.transpose else flat @ blobs[0].t()
        if self.bias_term:
            y = y + blobs[1]
        return (y.reshape(out),)
