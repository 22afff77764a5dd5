"""The YOLOv2 Caffe port's ``Reorg`` (gklz1982/caffe-yolov2, ``reorg_param.stride``).

* **Reorg** follows darknet's ``forward_reorg_layer`` (``reorg_cpu(..., forward=0, ...)``), the
  order the darknet-compatible Caffe ports reproduce so that darknet-trained weights keep
  working: output shape ``(N, C s^2, H / s, W / s)``, and output element ``i`` (flat, in the
  *input's* ``(b, k, j, i)`` raster order) is input element
  ``w2 + W s (h2 + H s (c2 + C/s^2 b))`` with ``c2 = k mod C/s^2``, ``offset = k div C/s^2``,
  ``w2 = i s + offset mod s``, ``h2 = j s + offset div s``. This is *not* a plain
  space-to-depth (``F.pixel_unshuffle``) - channels come out interleaved as darknet's do. The
  backward is the inverse permutation. ``reverse: true`` (gklz1982/caffe-yolov2's
  ``reorg_param``) writes ``top[index] = bottom[i]`` instead: the inverse map, output
  ``(N, C / s^2, H s, W s)``.
"""
from __future__ import annotations

from typing import Sequence

import torch

from ...errors import CaffeFormatError
from ...layers.base import CaffeLayer, Shape, check_4d, check_arity
from ...layers.registry import register


def reorg_index(n: int, c: int, h: int, w: int, s: int, device=None) -> torch.Tensor:
    """Flat input index of each flat output element of darknet's reorg (see the module)."""
    out_c = c // (s * s)
    b = torch.arange(n, device=device).view(n, 1, 1, 1)
    k = torch.arange(c, device=device).view(1, c, 1, 1)
    j = torch.arange(h, device=device).view(1, 1, h, 1)
    i = torch.arange(w, device=device).view(1, 1, 1, w)
    c2, offset = k % out_c, k // out_c
    w2, h2 = i * s + offset % s, j * s + offset // s
    return (w2 + w * s * (h2 + h * s * (c2 + out_c * b))).reshape(-1)


@register("Reorg", fork="yolov2")
class Reorg(CaffeLayer):
    """YOLOv2's reorg with darknet's element order (see the module docstring)."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        check_4d(bottom_shapes[0], param.name, "Reorg")
        if param.top[0] == param.bottom[0]:
            raise CaffeFormatError("Reorg cannot run in place", layer=param.name)
        rp = param.reorg_param
        self.stride = int(rp.stride)
        if self.stride < 1:
            raise CaffeFormatError(f"stride must be >= 1, got {self.stride}", layer=param.name)
        self.reverse = "reverse" in rp.DESCRIPTOR.fields_by_name and bool(rp.reverse)
        self._index: dict[tuple, torch.Tensor] = {}
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        check_4d(bottom_shapes[0], self.name, "Reorg")
        n, c, h, w = bottom_shapes[0]
        s = self.stride
        if self.reverse:
            if c % (s * s):
                raise CaffeFormatError(f"reverse Reorg stride {s} needs C divisible by {s * s}, "
                                       f"got {tuple(bottom_shapes[0])}", layer=self.name)
            return [(n, c // (s * s), h * s, w * s)]
        if h % s or w % s or c % (s * s):
            raise CaffeFormatError(f"Reorg stride {s} needs H, W divisible by {s} and C by "
                                   f"{s * s}, got {tuple(bottom_shapes[0])}", layer=self.name)
        return [(n, c * s * s, h // s, w // s)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        top = self.top_shapes([tuple(x.shape)])[0]
        key = (*x.shape, x.device)
        index = self._index.get(key)
        if index is None:
            index = reorg_index(*x.shape, self.stride, device=x.device)
            if self.reverse:  # the port writes top[index[i]] = bottom[i]: the inverse
                index = torch.empty_like(index).scatter_(
                    0, index, torch.arange(index.numel(), device=x.device))
            self._index = {key: index}
        return (x.reshape(-1)[index].reshape(top),)
