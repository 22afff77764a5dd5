"""Layers of the MobileNet Caffe ports: ``ReLU6``, ``ConvolutionDepthwise`` and
``DepthwiseConvolution``.

* **ReLU6**: ``min(max(x, 0), 6)`` (NaN passes through, as ``std::min(std::max(...))`` lets it);
  the gradient is ``top_diff * (0 < x < 6)`` - strict at both ends, where ``F.relu6``'s is 1.
* **ConvolutionDepthwise** (farmingyard/caffe-mobilenet ``conv_dw_layer``, from BVLC pull
  request #5665; the type ShuffleNet's and MobileNet's deploy files use; ``convolution_param``):
  one filter per input channel - a grouped convolution with ``group = num_output = C``. The port
  ignores ``num_output`` and ``group``: weight ``(C, 1, kh, kw)``, bias ``(C,)``; the geometry
  (kernel, stride, pad, dilation, DeepLab ``hole``) is parsed as for Convolution. (The port reads
  ``stride(0)``/``pad(0)`` even when the file gives none - undefined in Caffe; here they default
  to 1 and 0 as in Convolution.)
* **DepthwiseConvolution** (yonghenglh6/DepthwiseConvolution): on the CPU exactly Caffe's
  Convolution (``BaseConvolutionLayer``'s grouped GEMM with the file's ``num_output`` and
  ``group``), which this follows; the port's CUDA kernel alone assumes ``group = num_output = C``
  and ignores dilation, so files meant for it say ``group = num_output = C``.
"""
from __future__ import annotations

from typing import Sequence

import torch

from .base import CaffeLayer, Shape, check_arity
from .conv import Convolution
from .registry import register


@register("ReLU6")
class ReLU6(CaffeLayer):
    """``min(max(x, 0), 6)`` with the port's strict-interval gradient."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        clamped = torch.clamp(x, 0.0, 6.0)
        if not torch.is_grad_enabled() or not x.requires_grad:
            return (clamped,)
        inside = (x > 0) & (x < 6)
        return (torch.where(inside, x, clamped.detach()),)


@register("ConvolutionDepthwise")
class ConvolutionDepthwise(Convolution):
    """Depthwise convolution: ``group = num_output = C`` whatever the file says."""

    def output_and_group(self, p, channels: int) -> tuple[int, int]:
        return channels, channels


@register("DepthwiseConvolution")
class DepthwiseConvolution(Convolution):
    """yonghenglh6's depthwise layer: Caffe's Convolution on the CPU (the file's group)."""
