"""Normalisation layers: LRN, BatchNorm and MVN, with Caffe's formulas (not PyTorch's).

* **LRN** ``ACROSS_CHANNELS``: ``y = x (k + alpha/n * sum_window x^2)^-beta`` over ``n``
  neighbouring channels (zeros beyond the edges) - the same mathematics as
  ``F.local_response_norm``. ``WITHIN_CHANNEL``: ``y = x (1 + alpha/n^2 * sum_{n x n} x^2)^-beta``
  over a spatial window zero-padded by ``(n-1)/2``; Caffe **ignores** ``k`` here.
* **BatchNorm** has no affine part (Caffe pairs it with a Scale layer) and three blobs: the
  mean and variance *accumulators* and a scale factor ``s``; the statistics in use are
  ``blob * (1/s)`` (0 when ``s == 0``). ``use_global_stats`` defaults to ``phase == test``. Without
  global stats the layer normalises with the batch's (biased) variance and, in **any** phase,
  updates its blobs as Caffe does: ``s = lambda s + 1``, ``mean_acc = mean + lambda mean_acc``,
  ``var_acc = m/(m-1) var + lambda var_acc`` (``m`` values per channel). This is not
  ``nn.BatchNorm``'s momentum recursion. ``y = (x - mean) / sqrt(var + eps)``, a true division.
  Caffe never lets the solver touch the blobs: they get ``lr_mult: 0`` param specs here too.
* **MVN** subtracts the mean per (n, c) (or per n with ``across_channels``) and, with
  ``normalize_variance``, divides by ``std + eps`` - eps is added to the standard deviation,
  not to the variance as in instance/layer norm.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, f32, DTYPE_FLOAT32
from .registry import register

ACROSS_CHANNELS, WITHIN_CHANNEL = 0, 1




def _one_to_one(param, bottom_shapes, kind: str) -> None:
    if len(bottom_shapes) != 1 or len(param.top) != 1:
        raise CaffeFormatError(f"{kind} takes 1 bottom and 1 top, got {len(bottom_shapes)} and "
                               f"{len(param.top)}", layer=param.name)


@register("LRN")
class LRN(CaffeLayer):
    #: float32 even under precision='fast': sums of squares
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        _one_to_one(param, bottom_shapes, "LRN")
        p = param.lrn_param
        self.size = int(p.local_size)
        if self.size <= 0 or self.size % 2 == 0:
            raise CaffeFormatError(f"local_size must be odd and positive, got {self.size}",
                                   layer=param.name)
        self.alpha, self.beta, self.k = f32(p.alpha), f32(p.beta), f32(p.k)
        self.region = int(p.norm_region)
        if self.region not in (ACROSS_CHANNELS, WITHIN_CHANNEL):
            raise CaffeFormatError(f"unknown norm_region {self.region}", layer=param.name)
        if len(self.bottom_shapes[0]) != 4:
            raise CaffeFormatError(f"LRN needs a 4-D bottom (N, C, H, W), got shape "
                                   f"{self.bottom_shapes[0]}", layer=param.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        half = (self.size - 1) // 2
        sq = x * x
        if self.region == ACROSS_CHANNELS:
            # zeros beyond the channel edges, padded explicitly: PyTorch refuses a window
            # longer than the channels even with padding (local_size 5 on 3 channels)
            padded = F.pad(sq.unsqueeze(1), (0, 0, 0, 0, half, half))
            window = F.avg_pool3d(padded, (self.size, 1, 1), stride=1,
                                  divisor_override=1).squeeze(1)
            scale = self.k + f32(self.alpha / self.size) * window
        else:
            mean = F.avg_pool2d(sq, self.size, stride=1, padding=half, count_include_pad=True)
            scale = 1.0 + self.alpha * mean
        return (x * torch.pow(scale, -self.beta),)


@register("BatchNorm")
class BatchNorm(CaffeLayer):
    #: float32 even under precision='fast': accumulated statistics
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        _one_to_one(param, bottom_shapes, "BatchNorm")
        p = param.batch_norm_param
        self.use_global_stats = (bool(p.use_global_stats) if p.HasField("use_global_stats")
                                 else phase == "test")
        self.fraction = f32(p.moving_average_fraction)
        self.eps = f32(p.eps)
        shape = self.bottom_shapes[0]
        self.channels = shape[1] if len(shape) > 1 else 1
        for size in ((self.channels,), (self.channels,), (1,)):
            self.add_blob(size, requires_grad=False)
        # Caffe masks the statistics from the solver: lr_mult 0 for every blob
        for i in range(3):
            if i == len(param.param):
                param.param.add().lr_mult = 0.0
            elif param.param[i].lr_mult != 0:
                raise CaffeFormatError("BatchNorm statistics cannot be learned: param "
                                       f"{i} has lr_mult {param.param[i].lr_mult}, expected 0",
                                       layer=param.name)

    def reset_parameters(self) -> None:
        """All three blobs start at 0, as in Caffe."""
        with torch.no_grad():
            for b in self.blobs:
                b.zero_()

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        channels = shape[1] if len(shape) > 1 else 1
        if channels != self.channels:
            raise CaffeFormatError(f"bottom of shape {shape} has {channels} channels, the layer "
                                   f"was built for {self.channels}", layer=self.name)
        return [shape]

    def _view(self, t: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        return t.view(1, -1, *([1] * (x.dim() - 2))) if x.dim() > 1 else t

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(x.shape)])
        mean_acc, var_acc, factor = self.blobs
        if self.use_global_stats:
            s = factor.reshape(())
            inv = torch.where(s == 0, torch.zeros_like(s), 1.0 / s)
            mean, var = mean_acc * inv, var_acc * inv
        else:
            dims = [0, *range(2, x.dim())] if x.dim() > 1 else [0]
            m = x.numel() // self.channels
            mean = x.sum(dim=dims) * f32(1.0 / m) if m else x.sum(dim=dims)
            centred = x - self._view(mean, x)
            var = (centred * centred).sum(dim=dims) * f32(1.0 / m) if m else mean * 0
            if x.device.type != "meta":
                with torch.no_grad():
                    lam = self.fraction
                    unbias = m / (m - 1) if m > 1 else 1.0
                    factor.mul_(lam).add_(1.0)
                    mean_acc.mul_(lam).add_(mean.detach())
                    var_acc.mul_(lam).add_(var.detach() * unbias)
        y = (x - self._view(mean, x)) / self._view(torch.sqrt(var + self.eps), x)
        return (y,)


@register("MVN")
class MVN(CaffeLayer):
    #: float32 even under precision='fast': means and variances
    dtype_policy = DTYPE_FLOAT32

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        _one_to_one(param, bottom_shapes, "MVN")
        p = param.mvn_param
        self.normalize_variance = bool(p.normalize_variance)
        self.across_channels = bool(p.across_channels)
        self.eps = f32(p.eps)
        if len(self.bottom_shapes[0]) > 4:
            raise CaffeFormatError(f"MVN reads its bottom as (num, channels, height, width): at "
                                   f"most 4 axes, got {self.bottom_shapes[0]}", layer=param.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        shape = tuple(x.shape) + (1,) * (4 - x.dim())
        groups = shape[0] if self.across_channels else shape[0] * shape[1]
        flat = x.reshape(groups, -1)
        dim = flat.shape[1]
        inv = f32(1.0 / dim) if dim else math.nan
        centred = flat - (flat.sum(dim=1, keepdim=True) * inv)
        if self.normalize_variance:
            std = torch.sqrt((centred * centred).sum(dim=1, keepdim=True) * inv)
            centred = centred / (std + self.eps)
        return (centred.reshape(x.shape),)
