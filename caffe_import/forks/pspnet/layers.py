"""PSPNet's BN (hszhao/PSPNet). Its Interp and MatWrite are DeepLab v2's, which PSPNet is built
on (``caffe_import/forks/deeplab``; the ``pspnet`` entry says ``uses=("deeplab",)``).

* **BN** (``bn_param``: slope_filler, bias_filler, momentum, eps, frozen): four blobs, slope and
  bias ``(1, C, 1, 1)`` then the moving mean and variance. In TEST, or with ``frozen``, it
  computes ``((x - mean) * (var + eps)^-0.5) * slope + bias`` from the moving statistics. In
  TRAIN it normalises with the batch mean and *biased* variance and updates the moving ones as
  ``new = (1 - momentum) * batch + momentum * old``. As in the fork, blobs 2 and 3 (and 0, 1
  when frozen) get ``lr_mult: 0``. SegNet's ``BN`` has the same type name and another
  ``bn_param``: with ``fork="pspnet"`` this class is built; under the default mixture the
  layer's fields decide (:meth:`PSPNetBN.claim`).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ...layers.base import CaffeLayer, Shape, check_4d, check_arity, check_channels, f32
from ...layers.fillers import fill_or_constant
from ...layers.registry import register


def force_lr_mult_zero(param, indices: Sequence[int], count: int) -> None:
    """Give blobs ``indices`` ``lr_mult: 0`` and ``decay_mult: 0``, adding param specs up to
    ``count`` as the forks' ``LayerSetUp`` does."""
    while len(param.param) < count:
        param.param.add()
    for i in indices:
        param.param[i].lr_mult = 0.0
        param.param[i].decay_mult = 0.0


# ----------------------------------------------------------------------------- BN
_BN_FIELDS = ("slope_filler", "bias_filler", "momentum", "eps", "frozen")  # PSPNet's own


@register("BN", fork="pspnet")
class PSPNetBN(CaffeLayer):
    """PSPNet's BN (see the module docstring)."""

    #: slope, bias, moving mean and variance: under the default mixture a layer whose
    #: fields do not tell PSPNet's BN from SegNet's is the one whose count its weights hold
    param_blobs = 4

    @classmethod
    def claim(cls, param) -> int:
        """2 when the layer sets a field only PSPNet's BN has, 1 when its schema has them."""
        p = param.bn_param
        fields = p.DESCRIPTOR.fields_by_name
        if any(f in fields and p.HasField(f) for f in _BN_FIELDS):
            return 2
        return int(any(f in fields for f in _BN_FIELDS))

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        shape = self.bottom_shapes[0]
        check_4d(shape, param.name, "BN")
        p = param.bn_param
        self.frozen = bool(p.frozen)
        self.momentum, self.eps = f32(p.momentum), f32(p.eps)
        self.channels = shape[1]
        for i in range(4):
            self.add_blob((1, self.channels, 1, 1), requires_grad=i < 2)
        force_lr_mult_zero(param, [2, 3, 0, 1] if self.frozen else [2, 3], 4)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """slope/bias from their fillers (absent: constant 0); mean 0; variance 1 if frozen."""
        p = self.param.bn_param
        fill_or_constant(self.blobs[0].data, p, "slope_filler", 0.0, self.name)
        fill_or_constant(self.blobs[1].data, p, "bias_filler", 0.0, self.name)
        with torch.no_grad():
            self.blobs[2].zero_()
            self.blobs[3].fill_(1.0 if self.frozen else 0.0)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        check_4d(shape, self.name, "BN")
        check_channels(shape, self.channels, self.name)
        return [shape]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        self.top_shapes([tuple(x.shape)])
        slope, bias, mean_blob, var_blob = self.blobs
        if self.frozen or self.phase == "test":
            mean, var = mean_blob.reshape(-1), var_blob.reshape(-1)
        else:
            n, hw = x.shape[0], x.shape[2] * x.shape[3]
            mean = (x.sum(dim=(2, 3)) * f32(1.0 / hw)).sum(0) * f32(1.0 / n)
            centred = x - mean.view(1, -1, 1, 1)
            var = ((centred * centred).sum(dim=(2, 3)) * f32(1.0 / hw)).sum(0) * f32(1.0 / n)
            if x.device.type != "meta":
                with torch.no_grad():
                    m = self.momentum
                    mean_blob.mul_(m).add_(mean.detach().view_as(mean_blob) * (1 - m))
                    var_blob.mul_(m).add_(var.detach().view_as(var_blob) * (1 - m))
        inv = torch.pow(var + self.eps, -0.5).view(1, -1, 1, 1)
        y = (x - mean.view(1, -1, 1, 1)) * inv
        return (y * slope + bias,)
