"""Scale and Bias: multiply / add a blob broadcast over the axes around ``axis``.

The factor (or addend) covers ``bottom.shape[axis : axis + num_axes]`` (``num_axes: -1``: to the
end; ``0``: a scalar) and is repeated over the axes before and after - PyTorch broadcasting,
but aligned at ``axis`` rather than at the last axis. With one bottom it is a learned blob; with
two, bottom 1 is the factor/addend and its shape must equal ``bottom0.shape[axis:axis+ndim]``
(``num_axes`` is then ignored). Scale's learned factor defaults to the constant 1 (absent
``filler``), its optional bias (``bias_term``) and Bias's addend to 0. Blob order for Scale:
``[scale, bias]`` with one bottom, ``[bias]`` with two. ``y = x * s`` then ``y + b``: two
separately rounded operations as in Caffe, bit-exact on CPU.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, canonical_axis
from .fillers import fill_or_constant
from .registry import register


def _operand_shape(param, kind: str, axis: int, num_axes: int, bottom: Shape) -> Shape:
    """The learned blob's shape: ``bottom[axis : axis + num_axes]``."""
    if num_axes < -1:
        raise CaffeFormatError(f"{kind} num_axes must be -1 or more, got {num_axes}",
                               layer=param.name)
    start = canonical_axis(axis, len(bottom), param.name) if bottom else 0
    if num_axes == -1:
        return tuple(bottom[start:])
    if start + num_axes > len(bottom):
        raise CaffeFormatError(f"{kind} axis {axis} with num_axes {num_axes} runs past the "
                               f"{len(bottom)} axes of the bottom {bottom}", layer=param.name)
    return tuple(bottom[start:start + num_axes])


class _Broadcast(CaffeLayer):
    """Shared geometry: where the operand's axes sit in the bottom."""

    def _start(self, x_shape: Shape, operand: Shape, axis: int) -> int:
        start = 0 if len(operand) == 0 else canonical_axis(axis, len(x_shape), self.name)
        if tuple(x_shape[start:start + len(operand)]) != tuple(operand):
            raise CaffeFormatError(f"operand of shape {tuple(operand)} does not match bottom "
                                   f"{tuple(x_shape)} at axis {start}", layer=self.name)
        return start

    def _expand(self, t: torch.Tensor, x: torch.Tensor, axis: int) -> torch.Tensor:
        start = self._start(tuple(x.shape), tuple(t.shape), axis)
        return t.reshape((1,) * start + tuple(t.shape) + (1,) * (x.dim() - start - t.dim()))

    def _setup(self, param, kind: str, p) -> Shape:
        """Check the wiring, read ``axis``, and return the operand's shape: the second bottom's,
        or (one bottom) the param blob's, from ``axis`` and ``num_axes`` as Caffe derives it."""
        bottom_shapes = self.bottom_shapes
        if len(bottom_shapes) not in (1, 2) or len(param.top) != 1:
            raise CaffeFormatError(f"{kind} takes 1 or 2 bottoms and 1 top, got "
                                   f"{len(bottom_shapes)} and {len(param.top)}", layer=param.name)
        self.axis = int(p.axis)
        self.two_bottoms = len(bottom_shapes) == 2
        x = bottom_shapes[0]
        operand = (bottom_shapes[1] if self.two_bottoms
                   else _operand_shape(param, kind, self.axis, int(p.num_axes), x))
        self._start(x, operand, self.axis)
        return operand

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        x = tuple(bottom_shapes[0])
        operand = tuple(bottom_shapes[1]) if len(bottom_shapes) > 1 else tuple(
            self.blobs[0].shape)
        self._start(x, operand, self.axis)
        return [x]


@register("Scale")
class Scale(_Broadcast):
    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        p = param.scale_param
        operand = self._setup(param, "Scale", p)
        if not self.two_bottoms:
            self.add_blob(operand)
        self.bias_term = bool(p.bias_term)
        if self.bias_term:
            self.add_blob(operand)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``filler`` for the scale (absent: constant 1), ``bias_filler`` (absent: 0)."""
        p = self.param.scale_param
        blobs = self.blobs
        if not self.two_bottoms:
            fill_or_constant(blobs[0].data, p, "filler", 1.0, self.name)
        if self.bias_term:
            fill_or_constant(blobs[-1].data, p, "bias_filler", 0.0, self.name)

    def forward(self, x: torch.Tensor, *factor: torch.Tensor) -> tuple[torch.Tensor]:
        blobs = self.blobs
        s = factor[0] if self.two_bottoms else blobs[0]
        y = x * self._expand(s, x, self.axis)
        if self.bias_term:
            y = y + self._expand(blobs[-1], x, self.axis)
        return (y,)


@register("Bias")
class Bias(_Broadcast):
    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        operand = self._setup(param, "Bias", param.bias_param)
        if not self.two_bottoms:
            self.add_blob(operand)
            self.reset_parameters()

    def reset_parameters(self) -> None:
        """``filler`` (absent: constant 0)."""
        if not self.two_bottoms:
            fill_or_constant(self.blobs[0].data, self.param.bias_param, "filler", 0.0, self.name)

    def forward(self, x: torch.Tensor, *addend: torch.Tensor) -> tuple[torch.Tensor]:
        b = addend[0] if self.two_bottoms else self.blobs[0]
        return (x + self._expand(b, x, self.axis),)
