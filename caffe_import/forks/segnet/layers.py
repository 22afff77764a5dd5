"""SegNet's layers (alexgkendall/caffe-segnet; read from TimoSaemann/caffe-segnet-cudnn5, the
cuDNN 5 port of the same code): BN and Upsample; DenseImageData becomes net inputs
(``caffe_import.layers.data``).

* **BN** (``bn_param``: bn_mode, scale_filler, shift_filler): two blobs, scale and shift
  ``(1, C, 1, 1)``. ``bn_mode: INFERENCE`` computes ``x * scale + shift`` (SegNet's
  ``compute_bn_statistics.py`` folds the statistics into them). ``LEARN`` - the *default*, in
  any phase - normalises with the batch statistics, ``var = E[x^2] - E[x]^2`` and a fixed
  ``eps = 1e-9``: ``(x - mean) / sqrt(var + eps) * scale + shift``; optional tops 1 and 2 are
  the batch mean and variance ``(1, C, 1, 1)``. No running statistics exist.
* **Upsample** with two bottoms (data and the mask top of a MAX Pooling layer): max unpooling.
  Each value goes to the flat position ``mask`` names within its ``(n, c)`` plane of the output;
  the rest is 0. Where two inputs name the same position (overlapping pooling windows) the later
  one in raster order wins, as in the fork's loop; the backward hands every input the gradient
  at its position. Output size: ``upsample_h``/``upsample_w``, else ``H * scale_h - pad_out_h``
  (``scale`` defaults to 2). With one bottom, ``type: "Upsample"`` is the YOLO ports' nearest
  upsampling (``caffe_import/forks/yolo``).

PSPNet's ``BN`` and the YOLO ports' ``Upsample`` share these type names: with ``fork="segnet"``
(or ``segnet-cudnn5``) these classes are built; under the default mixture the layer decides
(:meth:`SegNetBN.claim`, :meth:`SegNetUpsample.claim`).
"""
from __future__ import annotations

from typing import Sequence

import torch

from ...errors import CaffeFormatError
from ...layers.base import CaffeLayer, Shape, check_4d, check_arity, check_channels, f32, tracing
from ...layers.data import SEGMENTATION_LABEL, DataInput, DataKind
from ...layers.fillers import fill_or_constant
from ...layers.registry import register

LEARN, INFERENCE = 0, 1
_BN_EPS = 1e-9  # hard-coded in the fork's BNLayer::LayerSetUp
_BN_FIELDS = ("bn_mode", "scale_filler", "shift_filler")  # SegNet's own BNParameter fields


@register("BN", fork="segnet")
class SegNetBN(CaffeLayer):
    """SegNet's BN (built for ``type: "BN"`` when the schema is SegNet's; see the module)."""

    #: scale and shift: under the default mixture a layer whose fields do not tell
    #: SegNet's BN from PSPNet's is the one whose count its weights hold
    param_blobs = 2

    @classmethod
    def claim(cls, param) -> int:
        """2 when the layer sets a field only SegNet's BN has or asks for the batch
        statistics (tops 1 and 2, which PSPNet's BN does not have), 1 when its schema has
        those fields."""
        p = param.bn_param
        fields = p.DESCRIPTOR.fields_by_name
        if any(f in fields and p.HasField(f) for f in _BN_FIELDS) or len(param.top) > 1:
            return 2
        return int(any(f in fields for f in _BN_FIELDS))

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, (1, 2, 3))
        shape = self.bottom_shapes[0]
        check_4d(shape, param.name, "BN")
        self.mode = int(param.bn_param.bn_mode)
        if self.mode not in (LEARN, INFERENCE):
            raise CaffeFormatError(f"unknown bn_mode {self.mode}", layer=param.name)
        if self.mode == INFERENCE and len(param.top) > 1:
            raise CaffeFormatError("bn_mode INFERENCE computes no batch statistics: give "
                                   "one top", layer=param.name)
        self.channels = shape[1]
        self.add_blob((1, self.channels, 1, 1))
        self.add_blob((1, self.channels, 1, 1))
        self.reset_parameters()

    def reset_parameters(self) -> None:
        """``scale_filler`` / ``shift_filler`` (absent: constant 0, Caffe's default filler)."""
        p = self.param.bn_param
        fill_or_constant(self.blobs[0].data, p, "scale_filler", 0.0, self.name)
        fill_or_constant(self.blobs[1].data, p, "shift_filler", 0.0, self.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        check_4d(shape, self.name, "BN")
        check_channels(shape, self.channels, self.name)
        return [shape] + [(1, self.channels, 1, 1)] * (len(self.param.top) - 1)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, ...]:
        self.top_shapes([tuple(x.shape)])
        scale, shift = self.blobs
        if self.mode == INFERENCE:
            return (x * scale + shift,)
        n, hw = x.shape[0], x.shape[2] * x.shape[3]
        inv_hw, inv_n = f32(1.0 / hw), f32(1.0 / n)
        mean = ((x.sum(dim=(2, 3)) * inv_hw).sum(0) * inv_n).view(1, -1, 1, 1)
        sq = ((x * x).sum(dim=(2, 3)) * inv_hw).sum(0) * inv_n
        var = (sq.view(1, -1, 1, 1) - mean * mean)
        y = (x - mean) / torch.sqrt(var + _BN_EPS) * scale + shift
        return (y, mean.detach(), var.detach())[:len(self.param.top)]


class _Unpool(torch.autograd.Function):
    """Scatter by mask with last-writer-wins; backward gathers (the fork's Backward_cpu)."""

    @staticmethod
    def forward(ctx, x, index, size: int):
        planes = x.shape[0] * x.shape[1]
        flat_x = x.reshape(planes, -1)
        pos = torch.arange(flat_x.shape[1], device=x.device).expand(planes, -1)
        winner = torch.full((planes, size), -1, dtype=torch.long, device=x.device)
        ok = (index >= 0) & (index < size)
        target = torch.where(ok, index, torch.full_like(index, size))  # spill column
        winner = torch.cat([winner, winner[:, :1]], 1)
        winner.scatter_reduce_(1, target, pos, reduce="amax", include_self=True)
        winner = winner[:, :size]
        out = flat_x.gather(1, winner.clamp(min=0))
        out = torch.where(winner >= 0, out, torch.zeros_like(out))
        ctx.save_for_backward(target)
        ctx.shape = x.shape
        return out

    @staticmethod
    def backward(ctx, g):
        (target,) = ctx.saved_tensors
        padded = torch.cat([g, torch.zeros_like(g[:, :1])], 1)
        return padded.gather(1, target).reshape(ctx.shape), None, None


@register("Upsample", fork="segnet")
class SegNetUpsample(CaffeLayer):
    """SegNet's max unpooling (``type: "Upsample"`` with two bottoms: data and pooling mask)."""

    @classmethod
    def claim(cls, param) -> int:
        """2 with two bottoms (the data and its pooling mask), else 0."""
        return 2 if len(param.bottom) == 2 else 0

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 2, 1, "data, pooling mask")
        p, name = param.upsample_param, param.name
        if p.HasField("upsample_h") and p.HasField("upsample_w"):
            self.size = (int(p.upsample_h), int(p.upsample_w))
            if min(self.size) <= 1:
                raise CaffeFormatError("upsample_h and upsample_w must be > 1", layer=name)
        else:
            if p.HasField("scale_h") != p.HasField("scale_w") or (
                    p.HasField("scale_h") and p.HasField("scale")):
                raise CaffeFormatError("give upsample_h and upsample_w, or scale, or scale_h "
                                       "and scale_w", layer=name)
            self.size = None
            self.scale = ((int(p.scale_h), int(p.scale_w)) if p.HasField("scale_h")
                          else (int(p.scale),) * 2)
            self.pad_out = (int(bool(p.pad_out_h)), int(bool(p.pad_out_w)))
            if min(self.scale) <= 1:
                raise CaffeFormatError(f"upsample scale must be > 1, got {self.scale}",
                                       layer=name)
            for i, axis in enumerate("hw"):
                if self.pad_out[i] and self.scale[i] != 2:
                    raise CaffeFormatError(f"pad_out_{axis} needs scale_{axis} == 2", layer=name)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        x, mask = (tuple(s) for s in bottom_shapes)
        check_4d(x, self.name, "Upsample")
        if mask != x:
            raise CaffeFormatError(f"the mask {mask} must have the data's shape {x}",
                                   layer=self.name)
        if self.size is not None:
            h, w = self.size
        else:
            h, w = (x[2] * self.scale[0] - self.pad_out[0], x[3] * self.scale[1] - self.pad_out[1])
        return [(x[0], x[1], h, w)]

    def forward(self, x: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor]:
        top = self.top_shapes([tuple(x.shape), tuple(mask.shape)])[0]
        size = top[2] * top[3]
        index = mask.detach().reshape(x.shape[0] * x.shape[1], -1).to(torch.long)
        # a check of the mask's values: eager on CPU only (no device sync); skipped while
        # torch.export traces (it cannot branch on data), where the eager net has checked
        if not tracing() and index.device.type == "cpu" and index.numel() \
                and int(index.max()) >= size:
            raise CaffeFormatError(f"mask index {int(index.max())} is outside the {top[2]}x"
                                   f"{top[3]} output: the pooling layer that made the mask saw "
                                   f"another size", layer=self.name)
        return (_Unpool.apply(x, index, size).reshape(top),)


@register("DenseImageData", fork="segnet")
class DenseImageData(DataInput):
    """SegNet's image and label-image data layer, as net inputs (``caffe_import.layers.data``):
    a ``(N, 1, H, W)`` label."""

    kind = DataKind("dense_image_data_param", label=SEGMENTATION_LABEL)
