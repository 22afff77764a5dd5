"""Layers that change a blob's shape but not its data: Flatten, Reshape, Tile."""
from __future__ import annotations

import math
from typing import Sequence

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, canonical_axis
from .registry import register


class _OneToOne(CaffeLayer):
    """One bottom, one top, never in place (Caffe CHECKs this for Flatten and Reshape)."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom) != 1 or len(param.top) != 1:
            raise CaffeFormatError(f"{param.type} takes exactly 1 bottom and 1 top",
                                   layer=param.name)
        if param.top[0] == param.bottom[0]:
            raise CaffeFormatError(f"{param.type} cannot run in place", layer=param.name)
        self.top_shapes(self.bottom_shapes)  # validate now, naming the layer

    def forward(self, x):
        return (x.reshape(self.top_shapes([tuple(x.shape)])[0]),)


@register("Flatten")
class Flatten(_OneToOne):
    """Merge axes ``axis`` .. ``end_axis`` (defaults 1 and -1, both may be negative) into one."""

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        p = self.param.flatten_param
        start = canonical_axis(p.axis, len(shape), self.name, "axis")
        end = canonical_axis(p.end_axis, len(shape), self.name, "end_axis")
        if end < start:
            raise CaffeFormatError(f"end_axis {p.end_axis} comes before axis {p.axis}",
                                   layer=self.name)
        return [shape[:start] + (math.prod(shape[start:end + 1]),) + shape[end + 1:]]


@register("Reshape")
class Reshape(_OneToOne):
    """Caffe's Reshape: ``shape`` replaces the bottom axes ``[start, end)``.

    ``start = axis`` if ``axis >= 0`` else ``num_axes + axis + 1`` (so -1 means after the last
    axis); ``end = start + num_axes`` (``num_axes: -1`` = to the end). In ``shape`` a 0 copies
    the bottom dimension at ``start + i`` (in PyTorch a 0 would be an empty dimension) and one
    -1 is inferred from the element count.
    """

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        p = self.param.reshape_param
        spec = [int(d) for d in p.shape.dim]
        if spec.count(-1) > 1:
            raise CaffeFormatError(f"Reshape shape {spec} has more than one -1", layer=self.name)
        if any(d < -1 for d in spec):
            raise CaffeFormatError(f"Reshape shape {spec}: dimensions must be >= -1",
                                   layer=self.name)
        n = len(shape)
        start = p.axis if p.axis >= 0 else n + p.axis + 1
        if not 0 <= start <= n:
            raise CaffeFormatError(f"Reshape axis {p.axis} is out of range for {n} axes",
                                   layer=self.name)
        if p.num_axes < -1:
            raise CaffeFormatError(f"Reshape num_axes must be >= -1, got {p.num_axes}",
                                   layer=self.name)
        end = n if p.num_axes == -1 else start + p.num_axes
        if end > n:
            raise CaffeFormatError(f"Reshape axis {p.axis} + num_axes {p.num_axes} go past the "
                                   f"bottom's {n} axes", layer=self.name)
        new = list(spec)
        for i, d in enumerate(spec):
            if d == 0:
                if start + i >= n:
                    raise CaffeFormatError(f"Reshape dim {i} is 0 (copy) but the bottom has no "
                                           f"axis {start + i}", layer=self.name)
                new[i] = shape[start + i]
        if -1 in new:
            known = math.prod(shape[:start]) * math.prod(shape[end:]) * \
                math.prod(d for d in new if d != -1)
            total = math.prod(shape)
            if known == 0 or total % known:
                raise CaffeFormatError(f"Reshape cannot infer the -1 in {spec} for a bottom of "
                                       f"shape {shape}", layer=self.name)
            new[new.index(-1)] = total // known
        out = shape[:start] + tuple(new) + shape[end:]
        if math.prod(out) != math.prod(shape):
            raise CaffeFormatError(f"Reshape to {out} changes the element count of the bottom "
                                   f"{shape}", layer=self.name)
        return [out]


@register("Tile")
class Tile(CaffeLayer):
    """Repeat the whole block from ``axis`` on, ``tiles`` times (``shape[axis] *= tiles``): a
    ``repeat``, not a ``repeat_interleave``."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        p = param.tile_param
        if len(param.bottom) != 1 or len(param.top) != 1:
            raise CaffeFormatError("Tile takes exactly 1 bottom and 1 top", layer=param.name)
        if not p.HasField("tiles") or p.tiles < 1:
            raise CaffeFormatError("Tile needs tile_param.tiles >= 1", layer=param.name)
        self.tiles = int(p.tiles)
        self.axis = canonical_axis(p.axis, len(self.bottom_shapes[0]), param.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        out = list(bottom_shapes[0])
        out[self.axis] *= self.tiles
        return [tuple(out)]

    def forward(self, x):
        reps = [1] * x.dim()
        reps[self.axis] = self.tiles
        return (x.repeat(*reps),)
