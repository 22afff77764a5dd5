"""Layers with no computation of their own: Silence, Parameter."""
from __future__ import annotations

from typing import Sequence

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, check_arity
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


@register("Parameter")
class Parameter(CaffeLayer):
    """No bottoms; one top that is the layer's one param blob, of ``parameter_param.shape``
    (no shape: a 0-axis blob of one value). Caffe gives the blob no filler: it holds zeros
    until weights are loaded, and learns like any param (the top's gradient is the blob's).
    The top is a copy of the blob, so a layer working in place on it cannot change the
    weights."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 0, 1)
        self.shape = tuple(int(d) for d in param.parameter_param.shape.dim)
        if any(d < 0 for d in self.shape):
            raise CaffeFormatError(f"parameter_param.shape {self.shape} has a negative "
                                   f"dimension", layer=param.name)
        self.add_blob(self.shape)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [self.shape]

    def forward(self):
        return (self.blobs[0].clone(),)
