"""SENet's ``Axpy`` (hujie-frank/SENet): ``top = a * x + y`` with ``a`` of shape ``(N, C)`` or
``(N, C, 1, 1)`` scaling each channel of ``x`` (``(N, C, ...)``), and ``y`` of ``x``'s shape -
the squeeze-and-excitation scale fused with the residual sum. The gradients are the plain ones
(``sum(g * x)`` per channel for ``a``, ``a * g`` for ``x``, ``g`` for ``y``), as the fork's."""
from __future__ import annotations

import math
from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, check_arity
from .registry import register


@register("Axpy")
class Axpy(CaffeLayer):
    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 3, 1, "a, x, y")
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        a, x, y = (tuple(s) for s in bottom_shapes)
        if (len(a) < 2 or len(x) < 2 or a[:2] != x[:2] or math.prod(a[2:]) != 1
                or (len(a) == 4 and a[2:] != (1, 1))):
            raise CaffeFormatError(f"the scale {a} must be (N, C) or (N, C, 1, 1) for x of "
                                   f"shape {x}", layer=self.name)
        if x != y:
            raise CaffeFormatError(f"x {x} and y {y} must have the same shape", layer=self.name)
        return [x]

    def forward(self, a: torch.Tensor, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(a.shape), tuple(x.shape), tuple(y.shape)])
        scale = a.reshape(*a.shape[:2], *([1] * (x.dim() - 2)))
        return (scale * x + y,)
