"""Pooling (``pooling_param``): MAX, AVE and STOCHASTIC over 4-D blobs, with Caffe's sizes;
SPP (``spp_param``), a pyramid of these poolings.

Where Caffe differs from ``F.max_pool2d`` / ``F.avg_pool2d``:

* Output size: ``ceil((H + 2 pad - k) / stride) + 1`` (``round_mode: FLOOR`` or the forks'
  ``ceil_mode: false``: ``floor``); then,
  **only when some pad is non-zero**, a last window that would start in the padding
  (``(out - 1) stride >= H + pad``) is dropped. PyTorch drops it even without padding, so with
  ``pad: 0`` and ``kernel < stride`` Caffe has one more row/column, whose windows hold no input:
  MAX gives ``-FLT_MAX`` there (mask ``-1``) and AVE gives ``0 / pool_size`` (``NaN`` or ``-0``).
* A fork's Caffe may add output rows and columns (:meth:`Pooling.extra_cells`; the YOLOv3
  ports' rule is in ``caffe_import/forks/yolo/layers.py``).
* ``pad`` may be anything below the kernel size; PyTorch refuses more than half the kernel.
* MAX ignores NaN (Caffe's strict ``>`` never picks it; a window of only NaN or ``-inf`` gives
  ``-FLT_MAX``); ties go to the first maximum in raster order; the optional second top is the
  winning index ``h * W + w`` in the (n, c) plane as a float, ``-1`` for an empty window.
* AVE divides the window sum by ``(min(hs + k, H + pad) - hs) * (min(ws + k, W + pad) - ws)``:
  padded cells count, cells of the ceil overhang beyond the padding do not.
* STOCHASTIC exists only in Caffe's GPU build (no padding): in TRAIN it samples one element per
  window with probability proportional to its value; in TEST it outputs ``sum(x^2) / sum(x)``
  (0 when ``sum(x) <= 0``). Both are implemented here, on any device.

Where PyTorch computes the same thing (the usual case) its kernels are used directly. For MAX on
CPU the NaN rule costs one ``amin`` over the output (the NaN-skipping pass runs only when the
output holds NaN or -inf); on CUDA and under torch.compile/export NaN is masked up front, which
avoids a host sync.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F

from ..errors import CaffeFormatError
from .base import FLT_MAX, CaffeLayer, Shape, check_arity, tracing
from .registry import register

MAX, AVE, STOCHASTIC = 0, 1, 2
CEIL, FLOOR = 0, 1


def lowest(dtype: torch.dtype) -> float:
    """Caffe's ``-FLT_MAX`` in ``dtype``; a reduced dtype (``precision="fast"``) that cannot
    hold it gets its own lowest finite value."""
    return -FLT_MAX if torch.finfo(dtype).max >= FLT_MAX else float(torch.finfo(dtype).min)


def _mask_dtype(y: torch.Tensor) -> torch.dtype:
    """The MAX mask top holds window indices: float32 (exact to 2^24) even when the pooled
    values are bf16, whose 8-bit mantissa would round indices above 256."""
    return torch.float32 if y.dtype in (torch.bfloat16, torch.float16) else y.dtype




def _hw(p, field: str, base: str, layer: str, default: int | None) -> tuple[int, int] | None:
    """``<field>`` or ``<base>_h`` + ``<base>_w`` (Caffe forbids mixing them)."""
    has = p.HasField(field)
    has_h, has_w = p.HasField(f"{base}_h"), p.HasField(f"{base}_w")
    if has and (has_h or has_w):
        raise CaffeFormatError(f"give either {field} or {base}_h and {base}_w, not both",
                               layer=layer)
    if has_h or has_w:
        if not (has_h and has_w):
            raise CaffeFormatError(f"{base}_h and {base}_w must be given together", layer=layer)
        return int(getattr(p, f"{base}_h")), int(getattr(p, f"{base}_w"))
    if has:
        v = int(getattr(p, field))
        return v, v
    return None if default is None else (default, default)


def _ceil_mode(p, layer: str) -> bool:
    """Ceil (Caffe's default) or floor rounding of the output size: BVLC's ``round_mode`` or
    the forks' ``ceil_mode: false`` (DenseNet / ResNeXt / SENet ports), whichever the schema
    has; the padding clip rule applies in both modes, as in those forks."""
    fields = p.DESCRIPTOR.fields_by_name
    has_ceil = "ceil_mode" in fields and p.HasField("ceil_mode")
    has_round = "round_mode" in fields and p.HasField("round_mode")
    if has_ceil and has_round:
        raise CaffeFormatError("give either round_mode or ceil_mode, not both", layer=layer)
    if has_ceil:
        return bool(p.ceil_mode)
    return int(p.round_mode) == CEIL if has_round else True



def window_sums(x: torch.Tensor, kernel: tuple[int, int], stride: tuple[int, int]) -> torch.Tensor:
    """Each pooling window's sum, as Caffe adds them (``avg_pool2d`` with divisor 1). torch's
    ONNX exporter drops ``divisor_override`` (its graph would divide by the window size), so
    while exporting to ONNX the sum is the mean times the window size: one rounding more,
    within the export check's float32 bounds; eager and ``.pt2`` keep the exact sums."""
    if torch.onnx.is_in_onnx_export():
        return F.avg_pool2d(x, kernel, stride, 0) * float(kernel[0] * kernel[1])
    return F.avg_pool2d(x, kernel, stride, 0, divisor_override=1)

class PoolGeometry:
    """Kernel (None for global pooling: the bottom's size), stride and pad as (h, w),
    validated as Caffe's ``PoolingLayer::LayerSetUp`` does. The one parser of
    ``pooling_param``'s geometry (the layer and the coordinate maps use it)."""

    def __init__(self, p, layer: str) -> None:
        self.global_pooling = bool(p.global_pooling)
        kernel = _hw(p, "kernel_size", "kernel", layer, None)
        if self.global_pooling:
            if kernel is not None:
                raise CaffeFormatError("global_pooling takes no kernel size", layer=layer)
        elif kernel is None:
            raise CaffeFormatError("kernel_size (or kernel_h and kernel_w) is required",
                                   layer=layer)
        elif min(kernel) <= 0:
            raise CaffeFormatError(f"kernel size must be positive, got {kernel}", layer=layer)
        self.kernel: tuple[int, int] | None = kernel
        self.pad: tuple[int, int] = _hw(p, "pad", "pad", layer, 0)
        self.stride: tuple[int, int] = _hw(p, "stride", "stride", layer, 1)
        if min(self.stride) <= 0:
            raise CaffeFormatError(f"stride must be positive, got {self.stride}", layer=layer)
        if self.global_pooling and (self.pad != (0, 0) or self.stride != (1, 1)):
            raise CaffeFormatError("global_pooling needs pad 0 and stride 1", layer=layer)
        if kernel is not None and (self.pad[0] >= kernel[0] or self.pad[1] >= kernel[1]):
            raise CaffeFormatError(f"pad {self.pad} must be smaller than the kernel {kernel}",
                                   layer=layer)
        self.ceil_mode: bool = _ceil_mode(p, layer)


def caffe_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool,
                      any_pad: bool, extra: int = 0) -> int:
    """Caffe's output length along one axis (``PoolingLayer::Reshape``); ``any_pad``: whether
    either pad is non-zero, which enables the rule dropping a window that starts in the pad."""
    num = size + 2 * pad - kernel  # ceil / floor in integers: a traced size stays symbolic
    out = (-(-num // stride) if ceil_mode else num // stride) + 1
    out += extra  # a fork's extra cells (Pooling.extra_cells), before the clip
    if any_pad and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def _torch_pooled_size(size: int, kernel: int, stride: int, pad: int, ceil_mode: bool) -> int:
    num = size + 2 * pad - kernel + (stride - 1 if ceil_mode else 0)
    out = num // stride + 1
    if ceil_mode and (out - 1) * stride >= size + pad:
        out -= 1
    return out


def ave_divisors(size: int, out: int, kernel: int, stride: int, pad: int) -> list[int]:
    """Caffe's AVE divisor per output position along one axis (may be 0 or negative in the
    windows of the ``pad: 0``, ``kernel < stride`` extra row)."""
    sizes = []
    for o in range(out):
        start = o * stride - pad
        sizes.append(min(start + kernel, size + pad) - start)
    return sizes


@register("Pooling")
class Pooling(CaffeLayer):
    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        p = param.pooling_param
        name = param.name
        if len(bottom_shapes) != 1 or len(param.top) not in (1, 2):
            raise CaffeFormatError(f"Pooling takes 1 bottom and 1 or 2 tops, got "
                                   f"{len(bottom_shapes)} and {len(param.top)}", layer=name)
        self.pool = int(p.pool)
        self.want_mask = len(param.top) == 2  # read once: torch.compile cannot trace protobuf
        if self.pool not in (MAX, AVE, STOCHASTIC):
            raise CaffeFormatError(f"unknown pool method {self.pool}", layer=name)
        if len(param.top) == 2 and self.pool != MAX:
            raise CaffeFormatError("only MAX pooling has a second (mask) top", layer=name)
        geom = PoolGeometry(p, name)
        self.global_pooling = geom.global_pooling
        self.kernel, self.pad, self.stride = geom.kernel, geom.pad, geom.stride
        if self.pad != (0, 0) and self.pool not in (MAX, AVE):
            raise CaffeFormatError("padding is implemented only for MAX and AVE pooling",
                                   layer=name)
        self.ceil_mode = geom.ceil_mode
        if len(self.bottom_shapes[0]) != 4:
            raise CaffeFormatError(f"Pooling needs a 4-D bottom (N, C, H, W), got shape "
                                   f"{self.bottom_shapes[0]}", layer=name)

    # ---------------------------------------------------------------- geometry
    def extra_cells(self, kernel: tuple[int, int]) -> int:
        """Output rows and columns a fork's Caffe adds after Caffe's size rule (its windows are
        clipped to the input like any window past its end): none in BVLC's; a fork's Pooling
        subclass overrides this."""
        return 0

    def _kernel(self, h: int, w: int) -> tuple[int, int]:
        return (h, w) if self.global_pooling else self.kernel

    def _geometry(self, shape: Shape):
        if len(shape) != 4:
            raise CaffeFormatError(f"Pooling needs a 4-D bottom (N, C, H, W), got shape "
                                   f"{tuple(shape)}", layer=self.name)
        h, w = shape[2], shape[3]  # no int(): a traced (dynamic) size stays symbolic
        k = self._kernel(h, w)
        any_pad = self.pad != (0, 0)
        extra = self.extra_cells(k)
        out = tuple(caffe_pooled_size(s, k[i], self.stride[i], self.pad[i], self.ceil_mode,
                                      any_pad, extra) for i, s in enumerate((h, w)))
        if min(out) <= 0:
            raise CaffeFormatError(f"pooling output would be empty for input {h}x{w} (kernel "
                                   f"{k}, stride {self.stride}, pad {self.pad})", layer=self.name)
        return (h, w), k, out

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        _, _, out = self._geometry(shape)
        top = (shape[0], shape[1], *out)
        return [top] * len(self.param.top)

    def _torch_ok(self, size, k, out) -> bool:
        """Whether PyTorch's pooling kernels give Caffe's window grid for these sizes."""
        for i in range(2):
            if 2 * self.pad[i] > k[i]:
                return False
            if _torch_pooled_size(size[i], k[i], self.stride[i], self.pad[i],
                                  self.ceil_mode) != out[i]:
                return False
        return True

    def _explicit_pad(self, x: torch.Tensor, size, k, out, value: float) -> torch.Tensor:
        """``x`` padded (or cut) so that windows of stride ``s`` without padding tile exactly
        Caffe's ``out`` positions: ``pad`` before, and whatever the last window needs after."""
        widths = []
        for i in (1, 0):
            after = (out[i] - 1) * self.stride[i] + k[i] - size[i] - self.pad[i]
            widths += [self.pad[i], after]
        return F.pad(x, widths, value=value)

    # ---------------------------------------------------------------- forward
    def forward(self, x: torch.Tensor):
        size, k, out = self._geometry(tuple(x.shape))
        if self.pool == MAX:
            return self._max(x, size, k, out)
        if self.pool == AVE:
            return (self._ave(x, size, k, out),)
        return (self._stochastic(x, size, k, out),)

    def _max(self, x, size, k, out):
        want_mask = self.want_mask
        fast = self._torch_ok(size, k, out)
        if fast and x.device.type == "cpu" and not tracing():
            # PyTorch's result is Caffe's unless a window holds NaN (PyTorch propagates it,
            # Caffe skips it) or only -inf; both show in the (smaller) output, so look there
            # first and redo the pooling Caffe's way only when needed.
            res = F.max_pool2d(x, k, self.stride, self.pad, ceil_mode=self.ceil_mode,
                               return_indices=want_mask)
            y = res[0] if want_mask else res
            if y.numel() == 0 or float(y.detach().amin()) > float("-inf"):  # amin keeps NaN
                return (y, res[1].to(_mask_dtype(y))) if want_mask else (y,)
        x = x.masked_fill(torch.isnan(x), float("-inf"))  # Caffe never selects NaN
        if fast:
            res = F.max_pool2d(x, k, self.stride, self.pad, ceil_mode=self.ceil_mode,
                               return_indices=want_mask)
            y, idx = res if want_mask else (res, None)
        else:
            xp = self._explicit_pad(x, size, k, out, float("-inf"))
            res = F.max_pool2d(xp, k, self.stride, 0, return_indices=want_mask)
            y, idx = res if want_mask else (res, None)
            if idx is not None:
                wp = xp.shape[3]
                idx = (idx // wp - self.pad[0]) * size[1] + (idx % wp - self.pad[1])
        empty = y == float("-inf")
        y = torch.where(empty, torch.full_like(y, lowest(y.dtype)), y)
        if not want_mask:
            return (y,)
        mask_dtype = _mask_dtype(y)
        mask = torch.where(empty, torch.full(y.shape, -1.0, dtype=mask_dtype, device=y.device),
                           idx.to(mask_dtype))
        return y, mask

    def _ave(self, x, size, k, out):
        if self._torch_ok(size, k, out):
            return F.avg_pool2d(x, k, self.stride, self.pad, ceil_mode=self.ceil_mode,
                                count_include_pad=True)
        xp = self._explicit_pad(x, size, k, out, 0.0)
        sums = window_sums(xp, k, self.stride)
        dh = ave_divisors(size[0], out[0], k[0], self.stride[0], self.pad[0])
        dw = ave_divisors(size[1], out[1], k[1], self.stride[1], self.pad[1])
        div = torch.tensor([[a * b for b in dw] for a in dh], dtype=x.dtype, device=x.device)
        return sums / div

    def _stochastic(self, x, size, k, out):
        xp = self._explicit_pad(x, size, k, out, 0.0)  # pad is 0: zeros only past the end
        if self.phase != "train":
            total = window_sums(xp, k, self.stride)
            squares = window_sums(xp * xp, k, self.stride)
            return torch.where(total > 0, squares / total, torch.zeros_like(total))
        n, c = x.shape[:2]
        cols = F.unfold(xp.reshape(n * c, 1, *xp.shape[2:]), k, stride=self.stride)
        total = cols.sum(dim=1, keepdim=True)
        threshold = torch.rand_like(total) * total
        reached = cols.cumsum(dim=1) >= threshold
        first = reached.to(torch.uint8).argmax(dim=1, keepdim=True)  # first window element
        picked = cols.gather(1, first)
        return picked.reshape(n, c, *out)


def spp_level_geometry(level: int, size: int) -> tuple[int, int]:
    """SPP's kernel (= stride) and pad along one axis for pyramid level ``level``: ``2^level``
    bins covering ``size``: ``kernel = ceil(size / bins)``, ``pad = (kernel bins - size + 1) / 2``
    in integers (Caffe's ``SPPLayer::GetPoolingParam``)."""
    bins = 2 ** level
    kernel = -(-size // bins)
    return kernel, (kernel * bins - size + 1) // 2


@register("SPP")
class SPP(CaffeLayer):
    """Spatial pyramid pooling (``spp_param``): for each level ``l < pyramid_height`` a Pooling
    of ``2^l x 2^l`` bins over the whole bottom (kernel, stride and pad from
    :func:`spp_level_geometry`), each flattened to (N, C * bins) and concatenated along axis 1.
    With ``pyramid_height: 1`` the top is the single pooling's (N, C, 1, 1), as in Caffe. The
    poolings are Caffe's Pooling layer (this module's), so its size and padding rules apply;
    a bottom too small for a level's bins (pad not below the kernel) is refused, as Caffe's
    Pooling refuses it."""

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 1, 1)
        p = param.spp_param
        self.height = int(p.pyramid_height)
        self.pool = int(p.pool)
        if self.height <= 0:
            raise CaffeFormatError("spp_param.pyramid_height must be given and positive",
                                   layer=param.name)
        if self.pool not in (MAX, AVE, STOCHASTIC):
            raise CaffeFormatError(f"unknown SPP pool method {self.pool}", layer=param.name)
        self._levels: dict[tuple[int, int], list[Pooling]] = {}
        self.top_shapes(self.bottom_shapes)

    def levels(self, shape: Shape) -> list[Pooling]:
        """The pyramid's Pooling layers for a bottom of ``shape`` (built once per size)."""
        if len(shape) != 4 or min(shape[2:]) <= 0:
            raise CaffeFormatError(f"SPP needs a 4-D bottom (N, C, H, W) with H, W > 0, got "
                                   f"{tuple(shape)}", layer=self.name)
        key = (int(shape[2]), int(shape[3]))
        if key not in self._levels:
            self._levels[key] = [self._level(i, *key, shape) for i in range(self.height)]
        return self._levels[key]

    def _level(self, level: int, h: int, w: int, shape: Shape) -> Pooling:
        (kh, ph), (kw, pw) = spp_level_geometry(level, h), spp_level_geometry(level, w)
        if ph >= kh or pw >= kw:
            raise CaffeFormatError(f"SPP level {level} ({2 ** level} bins) of a {h}x{w} bottom "
                                   f"needs pad ({ph}, {pw}) below its kernel ({kh}, {kw}), as "
                                   f"Caffe's Pooling requires: the bottom is too small",
                                   layer=self.name)
        lp = type(self.param)()
        lp.name, lp.type = f"{self.name}_level{level}", "Pooling"
        lp.bottom.append(self.param.bottom[0])
        lp.top.append(f"{self.name}_level{level}")
        pp = lp.pooling_param
        pp.pool, pp.kernel_h, pp.kernel_w, pp.stride_h, pp.stride_w = self.pool, kh, kw, kh, kw
        pp.pad_h, pp.pad_w = ph, pw
        return Pooling(lp, [shape], self.phase)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        shape = tuple(bottom_shapes[0])
        tops = [pool.top_shapes([shape])[0] for pool in self.levels(shape)]
        if self.height == 1:
            return tops
        return [(shape[0], sum(math.prod(t[1:]) for t in tops))]

    def forward(self, x: torch.Tensor):
        pools = self.levels(tuple(x.shape))
        if self.height == 1:
            return pools[0](x)
        return (torch.cat([pool(x)[0].reshape(x.shape[0], -1) for pool in pools], dim=1),)
