"""Embed (``embed_param``): a lookup table over integer-valued float indices.

Blobs: weight ``(input_dim, num_output)`` (the layout of ``nn.Embedding.weight``), bias
``(num_output,)`` when ``bias_term`` (default **true**, unlike ``nn.Embedding``). The top is the
bottom's shape plus ``(num_output,)``. Caffe truncates each index toward zero and only checks its
range in debug builds; here an index outside ``[0, input_dim)`` or not an integer raises
``CaffeFormatError`` (checked on the host, so it synchronises on CUDA). No gradient reaches the
indices, as in Caffe.
"""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, tracing, DTYPE_FLOAT32
from .fillers import fill_or_constant
from .registry import register




@register("Embed")
class Embed(CaffeLayer):
    #: float32 even under precision='fast': its bottom holds integer indices
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(bottom_shapes) != 1 or len(param.top) != 1:
            raise CaffeFormatError(f"Embed takes 1 bottom and 1 top, got {len(bottom_shapes)} "
                                   f"and {len(param.top)}", layer=param.name)
        p = param.embed_param
        self.num_output, self.input_dim = int(p.num_output), int(p.input_dim)
        if self.num_output <= 0 or self.input_dim <= 0:
            raise CaffeFormatError(f"num_output ({self.num_output}) and input_dim "
                                   f"({self.input_dim}) must be positive", layer=param.name)
        self.bias_term = bool(p.bias_term)
        self.add_blob((self.input_dim, self.num_output))
        if self.bias_term:
            self.add_blob((self.num_output,))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        p = self.param.embed_param
        fill_or_constant(self.blobs[0].data, p, "weight_filler", 0.0, self.name)
        if self.bias_term:
            fill_or_constant(self.blobs[1].data, p, "bias_filler", 0.0, self.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [(*tuple(bottom_shapes[0]), self.num_output)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        index = x.detach().trunc().long()
        if x.device.type != "meta" and not tracing() and x.numel():
            bad = (index < 0) | (index >= self.input_dim) | (x.detach() != index.to(x.dtype))
            if x.device.type == "cuda":  # a device-side assert: no host sync per forward
                torch._assert_async(~bad.any(), f"layer '{self.name}': an index is not an "
                                                f"integer in [0, {self.input_dim})")
            elif bool(bad.any()):
                value = x.detach()[bad].flatten()[0].item()
                raise CaffeFormatError(f"index {value} is not an integer in [0, "
                                       f"{self.input_dim})", layer=self.name)
        y = F.embedding(index, self.blobs[0])
        if self.bias_term:
            y = y + self.blobs[1]
        return (y,)
