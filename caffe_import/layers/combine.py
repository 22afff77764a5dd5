"""Layers that join or divide blobs along an axis: Concat, Slice, Split.

They only move data, so they agree with Caffe bit for bit.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, canonical_axis
from .registry import register




def _legacy_axis(sub, new: str, old: str, num_axes: int, layer: str) -> int:
    """``axis`` or its deprecated unsigned form (``concat_dim`` / ``slice_dim``); not both."""
    if sub.HasField(new) and sub.HasField(old):
        raise CaffeFormatError(f"set either {new} or the deprecated {old}, not both", layer=layer)
    if sub.HasField(old):
        axis = int(getattr(sub, old))
        if axis >= num_axes:
            raise CaffeFormatError(f"{old} {axis} is out of range for a blob with {num_axes} axes",
                                   layer=layer)
        return axis
    return canonical_axis(int(getattr(sub, new)), num_axes, layer)


@register("Concat")
class Concat(CaffeLayer):
    """Concatenate the bottoms along ``axis`` (default 1, or the legacy ``concat_dim``); every
    other dimension must agree. One bottom passes through unchanged."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom) < 1 or len(param.top) != 1:
            raise CaffeFormatError("Concat takes at least 1 bottom and exactly 1 top",
                                   layer=param.name)
        first = self.bottom_shapes[0]
        self.axis = _legacy_axis(param.concat_param, "axis", "concat_dim", len(first), param.name)
        self._check(self.bottom_shapes)

    def _check(self, shapes: Sequence[Shape]) -> None:
        first = shapes[0]
        for name, s in zip(self.param.bottom, shapes):
            if len(s) != len(first) or any(a != b for i, (a, b) in enumerate(zip(s, first))
                                           if i != self.axis):
                raise CaffeFormatError(f"Concat bottom '{name}' has shape {tuple(s)}; all "
                                       f"bottoms must match {tuple(first)} except on axis "
                                       f"{self.axis}", layer=self.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        self._check(bottom_shapes)
        out = list(bottom_shapes[0])
        out[self.axis] = sum(s[self.axis] for s in bottom_shapes)
        return [tuple(out)]

    def forward(self, *bottoms):
        if len(bottoms) == 1:
            return (bottoms[0],)
        return (torch.cat(bottoms, dim=self.axis),)


@register("Slice")
class Slice(CaffeLayer):
    """Split one bottom along ``axis`` (default 1, or the legacy ``slice_dim``) at the strictly
    increasing ``slice_point``s (one fewer than the tops), or into equal parts without them."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom) != 1 or len(param.top) < 1:
            raise CaffeFormatError("Slice takes exactly 1 bottom and at least 1 top",
                                   layer=param.name)
        shape = self.bottom_shapes[0]
        self.axis = _legacy_axis(param.slice_param, "axis", "slice_dim", len(shape), param.name)
        self.points = [int(p) for p in param.slice_param.slice_point]
        self.sizes(shape[self.axis])

    def sizes(self, length: int) -> list[int]:
        ntop = len(self.param.top)
        if self.points:
            if len(self.points) != ntop - 1:
                raise CaffeFormatError(f"Slice has {len(self.points)} slice_point(s) for {ntop} "
                                       f"tops; expected {ntop - 1}", layer=self.name)
            bounds = [0, *self.points, length]
            sizes = [b - a for a, b in zip(bounds, bounds[1:])]
            if any(s <= 0 for s in sizes):
                raise CaffeFormatError(f"slice_point {self.points} must be strictly increasing "
                                       f"and inside the axis of length {length}", layer=self.name)
            return sizes
        if length % ntop:
            raise CaffeFormatError(f"cannot slice an axis of length {length} into {ntop} equal "
                                   f"parts", layer=self.name)
        return [length // ntop] * ntop

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = list(bottom_shapes[0])
        out = []
        for size in self.sizes(shape[self.axis]):
            shape[self.axis] = size
            out.append(tuple(shape))
        return out

    def forward(self, x):
        return tuple(torch.split(x, self.sizes(x.shape[self.axis]), dim=self.axis))


@register("Split")
class Split(CaffeLayer):
    """Hand the bottom to every top without copying (Caffe shares the data; autograd sums the
    tops' gradients as Caffe's backward does). Never in place."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom) != 1 or len(param.top) < 1:
            raise CaffeFormatError("Split takes exactly 1 bottom and at least 1 top",
                                   layer=param.name)
        if param.bottom[0] in param.top:
            raise CaffeFormatError("Split cannot run in place", layer=param.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])] * len(self.param.top)

    def forward(self, x):
        return (x,) * len(self.param.top)
