"""Eltwise (``eltwise_param``): PROD, SUM (with optional per-bottom ``coeff``) or MAX of two or
more bottoms of **identical** shape (Caffe does not broadcast).

SUM accumulates ``c0 x0 + c1 x1 + ...`` in bottom order; PROD multiplies in bottom order. MAX
follows Caffe's comparisons rather than ``torch.maximum`` (which splits tie gradients) or
``torch.max`` over a stack (which sends them to the first input): the first pair picks bottom 0
only where it is strictly greater (ties and NaN go to bottom 1), each later bottom replaces the
running winner only where strictly greater. The whole gradient goes to the winner, as in Caffe.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, f32
from .registry import register

PROD, SUM, MAX = 0, 1, 2


@register("Eltwise")
class Eltwise(CaffeLayer):
    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        p = param.eltwise_param
        if len(bottom_shapes) < 2 or len(param.top) != 1:
            raise CaffeFormatError(f"Eltwise takes at least 2 bottoms and 1 top, got "
                                   f"{len(bottom_shapes)} and {len(param.top)}", layer=param.name)
        self.op = int(p.operation)
        if self.op not in (PROD, SUM, MAX):
            raise CaffeFormatError(f"unknown eltwise operation {self.op}", layer=param.name)
        coeffs = [f32(c) for c in p.coeff]
        if coeffs and len(coeffs) != len(bottom_shapes):
            raise CaffeFormatError(f"{len(coeffs)} coeff for {len(bottom_shapes)} bottoms: give "
                                   "one per bottom or none", layer=param.name)
        if coeffs and self.op == PROD:
            raise CaffeFormatError("coeff applies only to SUM, not PROD", layer=param.name)
        self.coeffs = coeffs or [1.0] * len(bottom_shapes)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        first = tuple(bottom_shapes[0])
        for i, s in enumerate(bottom_shapes[1:], 1):
            if tuple(s) != first:
                raise CaffeFormatError(f"all bottoms must have the same shape (no broadcasting):"
                                       f" bottom 0 is {first}, bottom {i} is {tuple(s)}",
                                       layer=self.name)
        return [first]

    def forward(self, *xs: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(x.shape) for x in xs])
        if self.op == SUM:
            y = None
            for c, x in zip(self.coeffs, xs):
                term = x if c == 1.0 else x * c
                y = term if y is None else y + term
            return (y,)
        if self.op == PROD:
            y = xs[0] * xs[1]
            for x in xs[2:]:
                y = y * x
            return (y,)
        y = torch.where(xs[0] > xs[1], xs[0], xs[1])
        for x in xs[2:]:
            y = torch.where(x > y, x, y)
        return (y,)
