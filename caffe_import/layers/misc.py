"""Layers with no computation of their own: Silence."""
from __future__ import annotations

from typing import Sequence

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape
from .registry import register


@register("Silence")
class Silence(CaffeLayer):
    """Consume its bottoms and produce nothing, so they are not net outputs. Caffe's backward
    writes zero gradients into the bottoms; here the bottoms simply get none from it."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom) < 1 or len(param.top) != 0:
            raise CaffeFormatError("Silence takes at least 1 bottom and no tops", layer=param.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return []

    def forward(self, *bottoms):
        return ()
