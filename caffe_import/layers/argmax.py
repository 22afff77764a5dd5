"""ArgMax (``argmax_param``): indices (and optionally values) of the ``top_k`` largest entries.

Caffe's rules, where they differ from ``torch.argmax``/``torch.topk``:

* Ties rank the **larger index first** (Caffe sorts (value, index) pairs in descending order);
  PyTorch prefers the smaller index.
* Without ``axis`` each sample (axis 0) is flattened and the top is ``(N, 1, top_k)`` - or
  ``(N, 2, top_k)`` with ``out_max_val``, holding the ``top_k`` indices then the ``top_k``
  values - padded with trailing 1s to the bottom's number of axes.
* With ``axis`` the top is the bottom's shape with ``top_k`` at ``axis``, holding the indices,
  or with ``out_max_val`` **only the values**.
* Indices are written as floats. There is no gradient.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, canonical_axis, DTYPE_FLOAT32
from .registry import register


def caffe_topk(x: torch.Tensor, k: int, dim: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The ``k`` largest values along ``dim`` and their indices, ties broken toward the larger
    index (Caffe's ``std::greater`` on (value, index) pairs)."""
    size = x.shape[dim]
    flipped = torch.flip(x, dims=(dim,))
    values, order = torch.sort(flipped, dim=dim, descending=True, stable=True)
    values = values.narrow(dim, 0, k)
    index = (size - 1) - order.narrow(dim, 0, k)
    return values, index


@register("ArgMax")
class ArgMax(CaffeLayer):
    #: float32 even under precision='fast': ties between equal scores must stay ties
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(bottom_shapes) != 1 or len(param.top) != 1:
            raise CaffeFormatError(f"ArgMax takes 1 bottom and 1 top, got {len(bottom_shapes)} "
                                   f"and {len(param.top)}", layer=param.name)
        p = param.argmax_param
        self.out_max_val = bool(p.out_max_val)
        self.top_k = int(p.top_k)
        shape = self.bottom_shapes[0]
        self.axis = (canonical_axis(int(p.axis), len(shape), param.name)
                     if p.HasField("axis") else None)
        if self.top_k < 1:
            raise CaffeFormatError(f"top_k must be at least 1, got {self.top_k}",
                                   layer=param.name)
        self.top_shapes([shape])

    def _dim(self, shape: Shape) -> int:
        return shape[self.axis] if self.axis is not None else math.prod(shape[1:])

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if self.top_k > self._dim(shape):
            raise CaffeFormatError(f"top_k {self.top_k} exceeds the {self._dim(shape)} entries "
                                   f"it ranks (bottom {shape})", layer=self.name)
        if self.axis is not None:
            out = list(shape)
            out[self.axis] = self.top_k
            return [tuple(out)]
        out = [1] * max(3, len(shape))
        out[0], out[1], out[2] = shape[0], 2 if self.out_max_val else 1, self.top_k
        return [tuple(out)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        (out,) = self.top_shapes([tuple(x.shape)])
        x = x.detach()
        if self.axis is not None:
            values, index = caffe_topk(x, self.top_k, self.axis)
            return (values if self.out_max_val else index.to(x.dtype),)
        values, index = caffe_topk(x.reshape(x.shape[0], -1), self.top_k, 1)
        parts = [index.to(x.dtype)] + ([values] if self.out_max_val else [])
        return (torch.cat(parts, dim=1).reshape(out),)
