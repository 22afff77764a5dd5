"""Crop: cut bottom 0 to the shape of bottom 1 from ``axis`` on, at fixed offsets.

Caffe's rules (``crop_param``: ``axis`` = 2, repeated unsigned ``offset``): axes before ``axis``
are kept whole; every axis from ``axis`` on takes bottom 1's size. One offset applies to every
cropped axis, several must be one per cropped axis, none means 0. Offsets are unsigned, so a crop
never shifts backwards or pads. Bottom 1 only lends its shape (it gets no gradient). The result
is a slice of bottom 0, so values are copied exactly.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, canonical_axis
from .registry import register


@register("Crop")
class Crop(CaffeLayer):
    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(bottom_shapes) != 2 or len(param.top) != 1:
            raise CaffeFormatError(f"Crop takes 2 bottoms (data, reference) and 1 top, got "
                                   f"{len(bottom_shapes)} and {len(param.top)}", layer=param.name)
        p = param.crop_param
        rank = len(self.bottom_shapes[0])
        self.axis = canonical_axis(int(p.axis), rank, param.name)
        offsets = [int(o) for o in p.offset]
        cropped = rank - self.axis
        if len(offsets) > 1 and len(offsets) != cropped:
            raise CaffeFormatError(f"{len(offsets)} offsets given for {cropped} cropped axes "
                                   f"(axis {self.axis} of {rank}): give one offset, or one per "
                                   "cropped axis", layer=param.name)
        if not offsets:
            offsets = [0] * cropped
        elif len(offsets) == 1:
            offsets = offsets * cropped
        self.offsets: tuple[int, ...] = tuple(offsets)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        data, ref = (tuple(s) for s in bottom_shapes)
        if len(data) != len(self.bottom_shapes[0]):
            raise CaffeFormatError(f"data bottom has {len(data)} axes, the layer was built for "
                                   f"{len(self.bottom_shapes[0])}", layer=self.name)
        if len(ref) < len(data):
            raise CaffeFormatError(f"reference bottom of shape {ref} has fewer axes than the "
                                   f"data bottom {data}", layer=self.name)
        out = list(data[:self.axis])
        for i in range(self.axis, len(data)):
            off = self.offsets[i - self.axis]
            if data[i] - off < ref[i]:
                raise CaffeFormatError(
                    f"cannot crop axis {i}: data size {data[i]} minus offset {off} is smaller "
                    f"than the reference size {ref[i]} (data {data}, reference {ref})",
                    layer=self.name)
            out.append(ref[i])
        return [tuple(out)]

    def forward(self, data: torch.Tensor, ref: torch.Tensor) -> tuple[torch.Tensor]:
        (shape,) = self.top_shapes([tuple(data.shape), tuple(ref.shape)])
        index = [slice(None)] * self.axis + [
            slice(off, off + size) for off, size in zip(self.offsets, shape[self.axis:])]
        return (data[tuple(index)],)
