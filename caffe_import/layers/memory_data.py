"""MemoryData: a data layer that serves batches from arrays the caller hands it.

Caffe's ``MemoryDataLayer`` (fed from Python by ``net.set_input_arrays(data, labels)``, which
calls its ``Reset``): tops ``data`` of shape (batch_size, channels, height, width) and
``label`` of shape (batch_size,) at setup and (batch_size, 1, 1, 1) once a forward has
served a batch (Caffe's ``Forward_cpu`` reshapes it so); each forward serves the batch at the current position and
advances it by ``batch_size``, wrapping around. The arrays are served as given (``Reset``
applies no transformation). A forward before any arrays were given is an error, as in Caffe.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape
from .registry import register


@register("MemoryData")
class MemoryData(CaffeLayer):
    """Batches of ``reset(data, labels)``'s arrays, in order, wrapping around."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        p = param.memory_data_param
        self.batch_size, self.channels = int(p.batch_size), int(p.channels)
        self.height, self.width = int(p.height), int(p.width)
        if min(self.batch_size, self.channels, self.height, self.width) <= 0:
            raise CaffeFormatError("memory_data_param needs batch_size, channels, height and "
                                   "width all > 0", layer=param.name)
        if len(param.top) != 2 or len(param.bottom):
            raise CaffeFormatError("MemoryData takes no bottoms and has two tops (data, label)",
                                   layer=param.name)
        self._data: torch.Tensor | None = None
        self._labels: torch.Tensor | None = None
        self.pos = 0
        self.register_buffer("_probe", torch.empty(0), persistent=False)  # follows .to()

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [(self.batch_size, self.channels, self.height, self.width), (self.batch_size,)]

    def reset(self, data: np.ndarray, labels: np.ndarray) -> None:
        """Serve ``data`` (N x channels x height x width, float32) with ``labels`` (N values),
        N a multiple of batch_size, from the first batch on."""
        data, labels = np.asarray(data), np.asarray(labels)
        want = (self.channels, self.height, self.width)
        if data.ndim != 4 or data.dtype != np.float32 or tuple(data.shape[1:]) != want:
            raise CaffeFormatError(f"data array must be float32 N x {want[0]} x {want[1]} x "
                                   f"{want[2]}, got {data.dtype} {data.shape}", layer=self.name)
        if labels.size != data.shape[0]:
            raise CaffeFormatError(f"data and labels must have the same first dimension "
                                   f"({data.shape[0]} vs {labels.size})", layer=self.name)
        if data.shape[0] % self.batch_size:
            raise CaffeFormatError(f"first dimensions of input arrays must be a multiple of "
                                   f"batch size {self.batch_size}, got {data.shape[0]}",
                                   layer=self.name)
        self._data = torch.from_numpy(np.ascontiguousarray(data))
        self._labels = torch.from_numpy(labels.reshape(-1).astype(np.float32))
        self.pos = 0

    def forward(self) -> tuple[torch.Tensor, torch.Tensor]:
        if self._data is None:
            raise CaffeFormatError("MemoryData has no arrays: give them first "
                                   "(pycaffe: net.set_input_arrays(data, labels))",
                                   layer=self.name)
        n, b = self._data.shape[0], self.batch_size
        data = self._data[self.pos:self.pos + b].to(self._device())
        labels = self._labels[self.pos:self.pos + b].to(self._device()).reshape(b, 1, 1, 1)
        self.pos = (self.pos + b) % n
        return data, labels

    def _device(self) -> torch.device:
        return self._probe.device
