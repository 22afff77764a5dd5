"""Layers that join or divide blobs along an axis: Concat, Slice, Split; and that pick rows
of the batch: Filter, BatchReindex.

They only move data, so they agree with Caffe bit for bit.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import DTYPE_FLOAT32, CaffeLayer, Shape, canonical_axis, check_arity, tracing
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


@register("Filter")
class Filter(CaffeLayer):
    """Bottoms ``b_0 ... b_{k-1}`` and a selector (the last bottom, (N, 1, ..., 1)); tops
    ``b_i[selected]``, the rows whose selector value is non-zero (NaN counts), in order: the
    top's batch is the number selected, known only from the data. Each bottom's N must be the
    selector's. The shapes a net sees at build time are the full batch (Caffe's first
    reshape). Backward: the top's gradient goes to the selected rows, zeros to the others; the
    selector gets none (Caffe refuses to backpropagate to it)."""

    host_reads = "the selector: the number of selected rows is the tops' batch size"
    export_unsupported = "Filter's output batch is the number of selected rows (data-dependent)"

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom) < 2 or len(param.top) != len(param.bottom) - 1:
            raise CaffeFormatError(f"Filter takes k >= 1 bottoms to filter, then the selector, "
                                   f"and k tops; got {len(param.bottom)} bottom(s) and "
                                   f"{len(param.top)} top(s)", layer=param.name)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shapes = [tuple(s) for s in bottom_shapes]
        selector = shapes[-1]
        if len(selector) < 1 or any(d != 1 for d in selector[1:]):
            raise CaffeFormatError(f"the selector (last bottom) must be (N, 1, ..., 1), got "
                                   f"{selector}", layer=self.name)
        for shape in shapes[:-1]:
            if len(shape) < 1 or shape[0] != selector[0]:
                raise CaffeFormatError(f"bottom {shape} must have the selector's batch size "
                                       f"{selector[0]}", layer=self.name)
        return shapes[:-1]

    def forward(self, *bottoms: torch.Tensor):
        self.top_shapes([tuple(b.shape) for b in bottoms])
        selector = bottoms[-1].detach()
        index = torch.nonzero(selector.reshape(selector.shape[0]) != 0).flatten()
        return tuple(b.index_select(0, index) for b in bottoms[:-1])


@register("BatchReindex")
class BatchReindex(CaffeLayer):
    """``top[i] = bottom[idx[i]]`` along the batch axis; ``idx`` (the second bottom, 1-D,
    float) is truncated toward zero and must lie in ``[0, N)`` (checked, as Caffe checks it; on CUDA
    by a device-side assert).
    Backward: each bottom row gets the sum of the gradients of the top rows that copied it;
    the indices get none."""

    #: float32 even under precision='fast': the indices must stay exact integers
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 2, 1, "data, indices")
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        data, index = (tuple(s) for s in bottom_shapes)
        if len(index) != 1 or len(data) < 1:
            raise CaffeFormatError(f"BatchReindex takes data (N, ...) and 1-D indices, got "
                                   f"{data} and {index}", layer=self.name)
        return [(index[0], *data[1:])]

    def forward(self, x: torch.Tensor, index: torch.Tensor):
        self.top_shapes([tuple(x.shape), tuple(index.shape)])
        index = index.detach()
        if index.device.type != "meta" and not tracing() and index.numel():
            bad = ~((index >= 0) & (index < x.shape[0]))
            if index.device.type == "cuda":  # a device-side assert: no host sync per forward
                torch._assert_async(~bad.any(), f"layer '{self.name}': an index is outside "
                                                f"[0, {x.shape[0]})")
            elif bool(bad.any()):
                raise CaffeFormatError(f"index {float(index[bad][0])} is outside [0, "
                                       f"{x.shape[0]}) (the data's batch)", layer=self.name)
        return (x.index_select(0, index.to(torch.long)),)
