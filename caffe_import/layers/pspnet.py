"""PSPNet's layers (hszhao/PSPNet): BN and Interp. DeepLab v2 (deeplab-public-ver2) ships the
same Interp (``interp_layer.cpp`` and ``util/interp.cpp`` are identical files), so this module is
its home too.

* **BN** (``bn_param``: slope_filler, bias_filler, momentum, eps, frozen): four blobs, slope and
  bias ``(1, C, 1, 1)`` then the moving mean and variance. In TEST, or with ``frozen``, it
  computes ``((x - mean) * (var + eps)^-0.5) * slope + bias`` from the moving statistics. In
  TRAIN it normalises with the batch mean and *biased* variance and updates the moving ones as
  ``new = (1 - momentum) * batch + momentum * old``. As in the fork, blobs 2 and 3 (and 0, 1
  when frozen) get ``lr_mult: 0``. SegNet's ``BN`` has the same type name and another
  ``bn_param``: the layer is picked from the schema in use (see :class:`BN`).
* **Interp** (``interp_param``): bilinear resizing with corners aligned, of the input cropped by
  ``pad_beg``/``pad_end`` (only <= 0 is allowed, as in the fork). Output size from
  ``height``/``width``, ``zoom_factor`` (``in + (in - 1)(zoom - 1)``), ``shrink_factor``
  (``(in - 1) / shrink + 1``) or both (shrink first); the fork reads them in the order zoom or
  shrink alone, then height and width, then both, so height and width win over the pair.
  Ratios and weights are float32 as in the fork; the same sizes copy the input. Its backward
  is the exact adjoint (autograd here).
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch

from ..errors import CaffeFormatError
from ..proto.schema import schema_of
from .base import CaffeLayer, Shape, check_4d, check_arity, check_channels, f32
from .fillers import fill_or_constant
from .registry import register
from .segnet import SegNetBN



def force_lr_mult_zero(param, indices: Sequence[int], count: int) -> None:
    """Give blobs ``indices`` ``lr_mult: 0`` and ``decay_mult: 0``, adding param specs up to
    ``count`` as the forks' ``LayerSetUp`` does."""
    while len(param.param) < count:
        param.param.add()
    for i in indices:
        param.param[i].lr_mult = 0.0
        param.param[i].decay_mult = 0.0


# ----------------------------------------------------------------------------- Interp
def _axis_weights(size_in: int, size_out: int, device) -> tuple[torch.Tensor, ...]:
    """Per output index: the lower source index, its +1 step (0 at the last row) and the two
    weights, computed in float32 as ``caffe_cpu_interp2`` does."""
    ratio = np.float32(size_in - 1) / np.float32(size_out - 1) if size_out > 1 else np.float32(0)
    pos = np.arange(size_out, dtype=np.float32) * ratio
    low = pos.astype(np.int64)
    step = (low < size_in - 1).astype(np.int64)
    w1 = (pos - low.astype(np.float32)).astype(np.float32)
    w0 = (np.float32(1) - w1).astype(np.float32)
    return tuple(torch.from_numpy(a).to(device) for a in (low, low + step, w0, w1))


def caffe_interp2(x: torch.Tensor, out_h: int, out_w: int) -> torch.Tensor:
    """``caffe_cpu_interp2`` on ``(N, C, H, W)``: ``h0 (w0 a + w1 b) + h1 (w0 c + w1 d)``."""
    h, w = x.shape[2], x.shape[3]
    if (h, w) == (out_h, out_w):
        return x.clone()
    hl, hr, h0, h1 = _axis_weights(h, out_h, x.device)
    wl, wr, w0, w1 = _axis_weights(w, out_w, x.device)
    w0, w1 = w0.to(x.dtype), w1.to(x.dtype)
    rows = w0 * x[..., wl] + w1 * x[..., wr]  # (N, C, H, out_w)
    h0, h1 = h0.to(x.dtype)[:, None], h1.to(x.dtype)[:, None]
    return h0 * rows[..., hl, :] + h1 * rows[..., hr, :]


@register("Interp")
class Interp(CaffeLayer):
    """PSPNet / DeepLab v2 bilinear interpolation (see the module docstring)."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        p = param.interp_param
        self.pad_beg, self.pad_end = int(p.pad_beg), int(p.pad_end)
        if self.pad_beg > 0 or self.pad_end > 0:
            raise CaffeFormatError("Interp supports only pad_beg, pad_end <= 0 (cropping)",
                                   layer=param.name)
        shrink, zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
        if not (shrink or zoom or (p.HasField("height") and p.HasField("width"))):
            raise CaffeFormatError("interp_param needs zoom_factor, shrink_factor or height "
                                   "and width", layer=param.name)
        if (shrink and p.shrink_factor < 1) or (zoom and p.zoom_factor < 1):
            raise CaffeFormatError("zoom_factor and shrink_factor must be >= 1",
                                   layer=param.name)
        self.top_shapes(self.bottom_shapes)

    def _out(self, h: int, w: int) -> tuple[int, int]:
        p = self.param.interp_param
        shrink, zoom = p.HasField("shrink_factor"), p.HasField("zoom_factor")
        if shrink == zoom and p.HasField("height") and p.HasField("width"):
            return int(p.height), int(p.width)  # the fork tries height/width before both
        size = [h, w]
        if shrink:
            size = [(s - 1) // int(p.shrink_factor) + 1 for s in size]
        if zoom:
            size = [s + (s - 1) * (int(p.zoom_factor) - 1) for s in size]
        return size[0], size[1]

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        check_4d(shape, self.name, "Interp")
        h, w = (s + self.pad_beg + self.pad_end for s in shape[2:])
        out = self._out(h, w)
        if min(h, w, *out) <= 0:
            raise CaffeFormatError(f"Interp of {shape} (pads {self.pad_beg}, {self.pad_end}) "
                                   f"gives an empty input or output {out}", layer=self.name)
        return [(shape[0], shape[1], *out)]

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor]:
        out = self.top_shapes([tuple(x.shape)])[0]
        b = -self.pad_beg
        x = x[:, :, b:x.shape[2] + self.pad_end, b:x.shape[3] + self.pad_end]
        return (caffe_interp2(x, out[2], out[3]),)


# ----------------------------------------------------------------------------- BN
_SEGNET_BN = ("bn_mode", "scale_filler", "shift_filler")
_PSPNET_BN = ("slope_filler", "bias_filler", "momentum", "eps", "frozen")


@register("BN")
class BN(CaffeLayer):
    """``type: "BN"``: PSPNet's layer or SegNet's - the two forks share the type name.

    The schema decides when it is one fork's (``fork="pspnet"``, ``fork="segnet"``); in the
    default mixture the fields the layer sets decide (``bn_mode``/``scale_filler``/
    ``shift_filler`` are SegNet's, ``slope_filler``/``bias_filler``/``momentum``/``eps``/
    ``frozen`` PSPNet's); with neither, a user schema having only one fork's fields decides,
    else PSPNet's (first in the default schema's order)."""

    @classmethod
    def resolve(cls, param) -> type[CaffeLayer] | None:
        fork = schema_of(param).fork or ""
        if fork.startswith("segnet"):
            return SegNetBN
        if fork == "pspnet":
            return PSPNetBN
        p = param.bn_param
        fields = p.DESCRIPTOR.fields_by_name
        sets = [any(f in fields and p.HasField(f) for f in names)
                for names in (_SEGNET_BN, _PSPNET_BN)]
        if sets[0] != sets[1]:
            return SegNetBN if sets[0] else PSPNetBN
        has = [any(f in fields for f in names) for names in (_SEGNET_BN, _PSPNET_BN)]
        return SegNetBN if has[0] and not has[1] else PSPNetBN


class PSPNetBN(CaffeLayer):
    """PSPNet's BN (see the module docstring)."""

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
