"""Convolution and Deconvolution (``convolution_param``), in 1, 2 or 3 spatial dimensions, and
Im2col (Caffe's im2col buffer as a layer, in any number of spatial dimensions).

Where Caffe differs from ``torch.nn.Conv*d``:

* Geometry fields come as repeated ``kernel_size``/``stride``/``pad``/``dilation`` (given
  once for every spatial axis, or once per axis) or as the 2-D-only ``*_h``/``*_w`` pairs.
* ``axis`` (default 1) is the channel axis; every axis before it is folded into the batch.
* Several bottoms give as many tops, all through the same weights.
* The output size uses C++ integer division, which truncates toward zero: when the padded input
  is smaller than the (dilated) kernel by less than one stride, Caffe still produces one output
  (its im2col reads zeros there) where PyTorch raises. We pad those missing zeros explicitly.
* Caffe adds the bias after the convolution sum (a second GEMM); PyTorch's kernels may fold it
  into the accumulation. The two differ by rounding only, and Caffe's own sum order depends on
  its BLAS, so the fused (faster) form is used.
* An absent ``weight_filler`` is the constant 0 (Caffe's ``FillerParameter`` default), not
  PyTorch's Kaiming initialisation; the absent ``bias_filler`` is constant 0 too.

Deconvolution's weight is ``(C_in, num_output / group, *kernel)`` - the layout of
``torch.nn.ConvTranspose*d.weight`` - and its output size is
``stride * (in - 1) + dilation * (kernel - 1) + 1 - 2 * pad`` (no ``output_padding``).
"""
from __future__ import annotations

import itertools
import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import CaffeFormatError
from .base import DTYPE_REDUCED, CaffeLayer, Shape, canonical_axis, check_arity, tracing
from .fillers import fill_or_constant
from .registry import register

_CONV = {1: F.conv1d, 2: F.conv2d, 3: F.conv3d}
_DECONV = {1: F.conv_transpose1d, 2: F.conv_transpose2d, 3: F.conv_transpose3d}




def _repeated(values: Sequence[int], n: int, default: int, field: str, layer: str,
              positive: bool) -> tuple[int, ...]:
    values = [int(v) for v in values]
    if not values:
        return (default,) * n
    if len(values) == 1:
        values = values * n
    if len(values) != n:
        raise CaffeFormatError(f"{field} must be given once or once per spatial axis ({n}), "
                               f"got {len(values)} values", layer=layer)
    if positive and any(v <= 0 for v in values):
        raise CaffeFormatError(f"{field} must be positive, got {values}", layer=layer)
    return tuple(values)


def _pair(p, base: str, repeated_field: str, n: int, layer: str) -> tuple[int, int] | None:
    """The ``<base>_h``/``<base>_w`` form when either is set (2-D only, not with the repeated
    field); None when neither is set."""
    if not (p.HasField(f"{base}_h") or p.HasField(f"{base}_w")):
        return None
    if n != 2:
        raise CaffeFormatError(f"{base}_h/{base}_w can only be used with 2 spatial axes, the "
                               f"bottom has {n}", layer=layer)
    if len(getattr(p, repeated_field)):
        raise CaffeFormatError(f"give either {repeated_field} or {base}_h/{base}_w, not both",
                               layer=layer)
    return int(getattr(p, f"{base}_h")), int(getattr(p, f"{base}_w"))


def _hole(p, n: int, layer: str) -> tuple[int, ...] | None:
    """DeepLab v1's ``hole`` / ``hole_h`` + ``hole_w`` (its name for dilation, 2-D only), when
    the schema has them and the file sets them; None otherwise."""
    fields = p.DESCRIPTOR.fields_by_name
    if "hole" not in fields:
        return None
    has, has_h, has_w = (p.HasField(f) for f in ("hole", "hole_h", "hole_w"))
    if not (has or has_h or has_w):
        return None
    if n != 2:
        raise CaffeFormatError(f"hole needs 2 spatial axes, the bottom has {n}", layer=layer)
    if has and (has_h or has_w):
        raise CaffeFormatError("give either hole or hole_h and hole_w, not both", layer=layer)
    hole = (int(p.hole),) * 2 if has else (int(p.hole_h), int(p.hole_w))
    if min(hole) <= 0:
        raise CaffeFormatError(f"hole must be positive, got {hole}", layer=layer)
    return hole


class ConvGeometry:
    """Kernel, stride, pad and dilation per spatial axis, validated as Caffe's
    ``BaseConvolutionLayer::LayerSetUp`` does."""

    def __init__(self, p, num_spatial: int, layer: str) -> None:
        n = num_spatial
        if n < 1:
            raise CaffeFormatError("convolution needs at least one spatial axis after the "
                                   "channel axis", layer=layer)
        kernel = _pair(p, "kernel", "kernel_size", n, layer)
        if kernel is None:
            if not len(p.kernel_size):
                raise CaffeFormatError("kernel_size (or kernel_h and kernel_w) is required",
                                       layer=layer)
            kernel = _repeated(p.kernel_size, n, 0, "kernel_size", layer, positive=True)
        elif min(kernel) <= 0:
            raise CaffeFormatError(f"kernel_h and kernel_w must both be positive, got "
                                   f"{kernel}", layer=layer)
        stride = _pair(p, "stride", "stride", n, layer)
        if stride is None:
            stride = _repeated(p.stride, n, 1, "stride", layer, positive=True)
        elif min(stride) <= 0:
            raise CaffeFormatError(f"stride_h and stride_w must both be given and positive, "
                                   f"got {stride}", layer=layer)
        pad = _pair(p, "pad", "pad", n, layer)
        if pad is None:
            pad = _repeated(p.pad, n, 0, "pad", layer, positive=False)
        dilation = _repeated(p.dilation, n, 1, "dilation", layer, positive=True)
        hole = _hole(p, n, layer)
        if hole is not None:
            if len(p.dilation):
                raise CaffeFormatError("give either dilation or DeepLab's hole, not both",
                                       layer=layer)
            dilation = hole
        self.kernel: tuple[int, ...] = tuple(kernel)
        self.stride: tuple[int, ...] = tuple(stride)
        self.pad: tuple[int, ...] = tuple(pad)
        self.dilation: tuple[int, ...] = tuple(dilation)

    def extent(self, i: int) -> int:
        return self.dilation[i] * (self.kernel[i] - 1) + 1


class _ConvBase(CaffeLayer):
    dtype_policy = DTYPE_REDUCED

    transposed = False

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        p = param.convolution_param
        name = param.name
        if not bottom_shapes:
            raise CaffeFormatError(f"{param.type} needs at least one bottom", layer=name)
        if len(param.bottom) != len(param.top):
            raise CaffeFormatError(f"{param.type} needs as many tops as bottoms, got "
                                   f"{len(param.bottom)} bottoms and {len(param.top)} tops",
                                   layer=name)
        shape = self.bottom_shapes[0]
        for other in self.bottom_shapes[1:]:
            if other != shape:
                raise CaffeFormatError(f"all bottoms must have the same shape, got {shape} and "
                                       f"{other}", layer=name)
        self.axis = canonical_axis(int(p.axis), len(shape), name)
        self.geom = ConvGeometry(p, len(shape) - self.axis - 1, name)
        if len(self.geom.kernel) > 3:
            raise CaffeFormatError(f"{len(self.geom.kernel)} spatial axes: only 1 to 3 are "
                                   "supported", layer=name)
        channels = shape[self.axis]
        self.num_output, self.group = self.output_and_group(p, channels)
        if self.num_output <= 0:
            raise CaffeFormatError("num_output must be given and positive", layer=name)
        if self.group <= 0 or channels % self.group or self.num_output % self.group:
            raise CaffeFormatError(f"group {self.group} must divide both the input channels "
                                   f"({channels}) and num_output ({self.num_output})", layer=name)
        self.channels = channels
        if self.transposed:
            wshape = (channels, self.num_output // self.group, *self.geom.kernel)
        else:
            wshape = (self.num_output, channels // self.group, *self.geom.kernel)
        self.bias_term = bool(p.bias_term)
        self.add_blob(wshape)
        if self.bias_term:
            self.add_blob((self.num_output,))
        self.reset_parameters()

    def output_and_group(self, p, channels: int) -> tuple[int, int]:
        """``num_output`` and ``group`` (a fork's depthwise layer derives both from the input)."""
        return int(p.num_output), int(p.group)

    def reset_parameters(self) -> None:
        """Caffe's initialisation: ``weight_filler`` and ``bias_filler`` (absent: constant 0)."""
        p = self.param.convolution_param
        fill_or_constant(self.blobs[0].data, p, "weight_filler", 0.0, self.name)
        if self.bias_term:
            fill_or_constant(self.blobs[1].data, p, "bias_filler", 0.0, self.name)

    def output_spatial(self, spatial: Sequence[int]) -> tuple[int, ...]:
        g = self.geom
        out = []
        for i, size in enumerate(spatial):
            if self.transposed:
                o = g.stride[i] * (size - 1) + g.extent(i) - 2 * g.pad[i]
            else:  # in integers, so that a size traced with dynamic shapes stays symbolic
                o = caffe_conv_out(size, g.extent(i), g.stride[i], g.pad[i])
            if o <= 0:
                raise CaffeFormatError(f"{self.param.type} output would be empty along spatial "
                                       f"axis {i} (input {size}, kernel {g.kernel[i]}, stride "
                                       f"{g.stride[i]}, pad {g.pad[i]}, dilation "
                                       f"{g.dilation[i]})", layer=self.name)
            out.append(o)
        return tuple(out)

    def _check(self, x: torch.Tensor) -> None:
        if x.dim() != len(self.bottom_shapes[0]) or x.shape[self.axis] != self.channels:
            raise CaffeFormatError(f"bottom of shape {tuple(x.shape)} does not match the "
                                   f"{self.channels} input channels at axis {self.axis} this "
                                   f"layer was built for", layer=self.name)

    def _one(self, x: torch.Tensor) -> torch.Tensor:
        self._check(x)
        blobs = self.blobs
        lead = x.shape[:self.axis]
        spatial = x.shape[self.axis + 1:]
        out_spatial = self.output_spatial(spatial)
        x = x.reshape(-1, self.channels, *spatial)
        g = self.geom
        bias = blobs[1] if self.bias_term else None
        if self.transposed:
            y = _DECONV[len(spatial)](x, blobs[0], bias, g.stride, g.pad, 0, self.group,
                                      g.dilation)
        else:
            padding = list(g.pad)
            short = self._short(spatial, out_spatial)
            if any(short):
                # Caffe's truncating division kept an output whose window runs past the padded
                # input: pad those positions with zeros explicitly, as its im2col reads them.
                widths = []
                for i in reversed(range(len(spatial))):
                    widths += [g.pad[i], g.pad[i] + short[i]]
                x = F.pad(x, widths)
                padding = [0] * len(spatial)
            y = _CONV[len(spatial)](x, blobs[0], bias, g.stride, padding, g.dilation,
                                    self.group)
            if any(short):
                y = y[(..., *[slice(0, o) for o in out_spatial])]
        return y.reshape(*lead, self.num_output, *out_spatial)

    def _short(self, spatial: Sequence[int], out_spatial: Sequence[int]) -> list[int]:
        """Per spatial axis, how far Caffe's last window runs past the padded input."""
        g = self.geom
        return [max(0, (o - 1) * g.stride[i] + g.extent(i) - (s + 2 * g.pad[i]))
                for i, (s, o) in enumerate(zip(spatial, out_spatial))]

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        return tuple(self._one(x) for x in bottoms)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        out = []
        for s in bottom_shapes:
            s = tuple(s)
            if len(s) != len(self.bottom_shapes[0]) or s[self.axis] != self.channels:
                raise CaffeFormatError(f"bottom of shape {s} does not match the "
                                       f"{self.channels} input channels at axis {self.axis}",
                                       layer=self.name)
            out.append((*s[:self.axis], self.num_output,
                        *self.output_spatial(s[self.axis + 1:])))
        return out


@register("Convolution")
class Convolution(_ConvBase):
    """Caffe's Convolution: weight ``(num_output, C_in / group, *kernel)``, bias ``(num_output,)``
    (iff ``bias_term``); ``out = (in + 2 pad - dilation (k - 1) - 1) / stride + 1`` truncated
    toward zero."""

    fuses_relu = True
    #: Set by ``set_precision``: run oneDNN's kernel on weights packed once into its blocked
    #: layout (what inductor's freezing does; saves a reorder of every weight on every call).
    #: Packed kernels may sum in another order, so only reduced-precision policies use them.
    pack_weights: bool = False

    def set_precision(self, policy) -> None:
        self.pack_weights = bool(policy.reduced)
        self._packed = None

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if self.pack_weights:
            return tuple(_first(self._one_fast(x, "none"), self._one, x) for x in bottoms)
        return tuple(self._one(x) for x in bottoms)

    def forward_relu(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        """``forward`` followed by Caffe's ReLU with slope 0 (``max(x, 0)``), for the net's
        inference plans: one oneDNN kernel (convolution, bias and ReLU, in the input's dtype)
        on CPU for a 2-D convolution without gradients; elsewhere the plain forward and an
        in-place ReLU. In float32 the values are the two steps' up to summation order
        (bit-equal where PyTorch's own convolution also runs oneDNN), as Caffe's own sums
        depend on its BLAS."""
        return tuple(_first(self._one_fast(x, "relu"), lambda t: self._one(t).relu_(), x)
                     for x in bottoms)

    def _one_fast(self, x: torch.Tensor, attr: str) -> torch.Tensor | None:
        """oneDNN's convolution + pointwise ``attr`` ("none" / "relu"), or None where it does
        not apply (not CPU, not 2-D, gradients on, Caffe's truncated last window ...)."""
        if tracing():  # compiled or exported: the compiler picks and fuses the kernels
            return None
        op = _fused_conv_relu()
        if (op is None or x.device.type != "cpu" or x.dim() != 4 or self.axis != 1
                or torch.is_grad_enabled() or x.dtype not in (torch.float32, torch.bfloat16)
                or x.shape[1] != self.channels):
            return None
        if any(self._short(x.shape[2:], self.output_spatial(x.shape[2:]))):
            return None
        g, blobs = self.geom, self.blobs
        weight = blobs[0]
        if self.pack_weights and weight.dtype == x.dtype:
            weight = self._packed_weight(weight, x)
        bias = blobs[1] if self.bias_term else None
        return op(x, weight, bias, list(g.pad), list(g.stride), list(g.dilation), self.group,
                  attr, [], "")

    def _packed_weight(self, weight: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        key = (weight.data_ptr(), weight._version, weight.dtype)
        packed = getattr(self, "_packed", None)
        if packed is None or packed[0] != key:
            g = self.geom
            reorder = torch.ops.mkldnn._reorder_convolution_weight
            packed = (key, reorder(weight.detach(), list(g.pad), list(g.stride),
                                   list(g.dilation), self.group, list(x.shape)))
            self._packed = packed
        return packed[1]


def _first(done: torch.Tensor | None, fallback, x: torch.Tensor) -> torch.Tensor:
    return done if done is not None else fallback(x)


def _fused_conv_relu():
    """oneDNN's convolution + pointwise op (what inductor emits on CPU), or None."""
    mkldnn = getattr(torch.ops, "mkldnn", None)
    if mkldnn is None or not torch.backends.mkldnn.is_available():
        return None
    try:
        return mkldnn._convolution_pointwise
    except (AttributeError, RuntimeError):
        return None


@register("Deconvolution")
class Deconvolution(_ConvBase):
    """Caffe's Deconvolution (transposed convolution): weight ``(C_in, num_output / group,
    *kernel)``, bias ``(num_output,)``; ``out = stride (in - 1) + dilation (k - 1) + 1 - 2 pad``."""

    transposed = True


def caffe_conv_out(size: int, kernel_extent: int, stride: int, pad: int) -> int:
    """Caffe's convolution / im2col output length: ``(size + 2 pad - extent) / stride + 1``
    with C++'s division, which truncates toward zero."""
    num = size + 2 * pad - kernel_extent
    return (num // stride if num >= 0 else -(-num // stride)) + 1


def im2col(x: torch.Tensor, geom: ConvGeometry, out_spatial: Sequence[int]) -> torch.Tensor:
    """Caffe's ``im2col`` of (B, C, *spatial) in any number of spatial axes: (B, C * K,
    *out_spatial) with K the kernel's cells, rows ordered channel first, then the kernel
    offsets in raster order; cells outside the input read 0. Its gradient (autograd of the
    slices) is Caffe's ``col2im``: the sum over every window that read a cell."""
    spatial = x.shape[2:]
    widths = []
    for i in reversed(range(len(spatial))):
        reach = (out_spatial[i] - 1) * geom.stride[i] + geom.extent(i)
        widths += [geom.pad[i], max(0, reach - spatial[i] - geom.pad[i])]
    xp = F.pad(x, widths)
    cols = []
    for offsets in itertools.product(*(range(k) for k in geom.kernel)):
        index = [slice(o * d, o * d + (n - 1) * s + 1, s) for o, d, n, s in
                 zip(offsets, geom.dilation, out_spatial, geom.stride)]
        cols.append(xp[(..., *index)])
    return torch.stack(cols, dim=2).reshape(x.shape[0], -1, *out_spatial)


@register("Im2col")
class Im2col(CaffeLayer):
    """Caffe's Im2col layer (``convolution_param``'s kernel, stride, pad, dilation and
    ``axis``; any number of spatial axes): the top is the bottom's axes before ``axis``, then
    ``C * prod(kernel)`` channels, then the output positions, laid out as Caffe's im2col
    buffer (see :func:`im2col`). Output sizes truncate as Caffe's do (a window running past
    the padded input reads zeros)."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        p = param.convolution_param
        shape = self.bottom_shapes[0]
        self.axis = canonical_axis(int(p.axis), len(shape), param.name)
        self.geom = ConvGeometry(p, len(shape) - self.axis - 1, param.name)
        self.top_shapes(self.bottom_shapes)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        g = self.geom
        if len(shape) != len(self.bottom_shapes[0]):
            raise CaffeFormatError(f"bottom {shape} must have the {len(self.bottom_shapes[0])} "
                                   f"axes the layer was built for", layer=self.name)
        out = [caffe_conv_out(s, g.extent(i), g.stride[i], g.pad[i])
               for i, s in enumerate(shape[self.axis + 1:])]
        if min(out) <= 0:
            raise CaffeFormatError(f"im2col output would be empty for bottom {shape} (kernel "
                                   f"{g.kernel}, stride {g.stride}, pad {g.pad}, dilation "
                                   f"{g.dilation})", layer=self.name)
        return [(*shape[:self.axis], shape[self.axis] * math.prod(g.kernel), *out)]

    def forward(self, x: torch.Tensor):
        (top,) = self.top_shapes([tuple(x.shape)])
        a = self.axis
        flat = x.reshape(-1, x.shape[a], *x.shape[a + 1:])
        return (im2col(flat, self.geom, top[a + 1:]).reshape(top),)
