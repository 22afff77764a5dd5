"""Layers that start a net: Input (blobs fed by the caller) and DummyData (filled blobs)."""
from __future__ import annotations

from typing import Sequence

import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape
from .fillers import fill as apply_filler
from .registry import register


def _blob_shape(shape_msg) -> Shape:
    return tuple(int(d) for d in shape_msg.dim)


def _check_dims(shape: Shape, layer: str) -> Shape:
    if any(d < 0 for d in shape):
        raise CaffeFormatError(f"shape {shape} has a negative dimension", layer=layer)
    return shape


@register("Input")
class Input(CaffeLayer):
    """The net's inputs: its tops are what the caller passes to ``CaffeNet.forward``.

    ``input_param.shape`` is given once (every top), once per top, or not at all (shape
    deferred to the first forward; such a net cannot infer shapes at build time). The net
    feeds the tops itself; ``forward`` here is never called.
    """

    feeds_net = True  # the net feeds its tops (a data layer of a fork may too)

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom):
            raise CaffeFormatError("Input layers take no bottoms", layer=param.name)
        shapes = [_check_dims(_blob_shape(s), param.name) for s in param.input_param.shape]
        ntop = len(param.top)
        if len(shapes) not in (0, 1, ntop):
            raise CaffeFormatError(f"input_param has {len(shapes)} shapes for {ntop} tops; "
                                   f"expected 0, 1 or {ntop}", layer=param.name)
        self.shapes: list[Shape] | None = (None if not shapes else
                                           shapes * ntop if len(shapes) == 1 else shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        if self.shapes is None:
            raise CaffeFormatError("Input layer without input_param.shape: give the shapes "
                                   "of its tops as CaffeNet(..., input_shapes={top: shape})",
                                   layer=self.name)
        return list(self.shapes)

    def forward(self, *bottoms):
        raise RuntimeError(f"Input layer '{self.name}' is fed by the net, not run")


@register("DummyData")
class DummyData(CaffeLayer):
    """Tops of fixed shapes filled by ``data_filler``s (none: constant 0; one: for every top;
    else one per top). Shapes come from ``shape`` (one, or one per top) or the legacy
    ``num/channels/height/width`` (each given once or per top). As in Caffe, tops with a
    constant filler are filled once; the others are refilled on every forward.
    """

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        p = param.dummy_data_param
        ntop = len(param.top)
        if len(param.bottom) or ntop < 1:
            raise CaffeFormatError("DummyData takes no bottoms and at least 1 top",
                                   layer=param.name)
        legacy = [list(p.num), list(p.channels), list(p.height), list(p.width)]
        if len(p.shape) and any(legacy):
            raise CaffeFormatError("DummyData: give either shape or num/channels/height/width",
                                   layer=param.name)
        if len(p.shape):
            shapes = [_blob_shape(s) for s in p.shape]
            if len(shapes) not in (1, ntop):
                raise CaffeFormatError(f"{len(shapes)} shapes for {ntop} tops; expected 1 or "
                                       f"{ntop}", layer=param.name)
        else:
            for field, vals in zip(("num", "channels", "height", "width"), legacy):
                if len(vals) not in (1, ntop):
                    raise CaffeFormatError(f"{field} given {len(vals)} times for {ntop} tops; "
                                           f"expected 1 or {ntop}", layer=param.name)
            shapes = [tuple(int(v[i] if len(v) > 1 else v[0]) for v in legacy)
                      for i in range(ntop)]
        self.shapes = [_check_dims(s, param.name) for s in
                       (shapes * ntop if len(shapes) == 1 else shapes)]
        fillers = list(p.data_filler)
        if len(fillers) not in (0, 1, ntop):
            raise CaffeFormatError(f"{len(fillers)} data_fillers for {ntop} tops; expected "
                                   f"0, 1 or {ntop}", layer=param.name)
        self.fillers = [None] * ntop if not fillers else (fillers * ntop if len(fillers) == 1
                                                          else fillers)
        self.register_buffer("_device_probe", torch.empty(0), persistent=False)
        self._constant: dict[int, torch.Tensor] = {}

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return list(self.shapes)

    def _top(self, i: int) -> torch.Tensor:
        filler = self.fillers[i]
        device = self._device_probe.device
        if filler is None or filler.type == "constant":
            cached = self._constant.get(i)
            if cached is None or cached.device != device:
                cached = torch.full(self.shapes[i], 0.0 if filler is None else filler.value,
                                    device=device)
                self._constant[i] = cached
            return cached
        t = torch.empty(self.shapes[i], device=device)
        apply_filler(t, filler, self.name)
        return t

    def forward(self, *bottoms):
        return tuple(self._top(i) for i in range(len(self.shapes)))
