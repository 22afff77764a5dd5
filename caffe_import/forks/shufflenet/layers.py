"""ShuffleNet's ``ShuffleChannel`` (farmingyard/ShuffleNet; ``shuffle_channel_param.group``):
output channel ``j * G + i`` is input channel ``i * (C / G) + j`` - the channels viewed as a
``G x C/G`` matrix and transposed: the permutation of PyTorch's
``torch.nn.functional.channel_shuffle(x, G)`` (a test holds them equal). The backward is the
inverse shuffle."""
from __future__ import annotations

from typing import Sequence

import torch

from ...errors import CaffeFormatError
from ...layers.base import CaffeLayer, Shape, check_arity
from ...layers.registry import register


@register("ShuffleChannel", fork="shufflenet")
class ShuffleChannel(CaffeLayer):
    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        self.group = int(param.shuffle_channel_param.group)
        if self.group <= 0:
            raise CaffeFormatError(f"group must be positive, got {self.group}", layer=param.name)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        if len(shape) < 2 or shape[1] % self.group:
            raise CaffeFormatError(f"group {self.group} must divide the channels of {shape}",
                                   layer=self.name)
        return [shape]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(x.shape)])
        n, c = x.shape[:2]
        rest = x.shape[2:]
        y = x.reshape(n, self.group, c // self.group, *rest).transpose(1, 2)
        return (y.reshape(x.shape),)
