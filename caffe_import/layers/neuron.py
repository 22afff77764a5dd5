"""Elementwise ("neuron") layers: one bottom, one top of the same shape (Swish and Clip
with Caffe's own backward).

Where Caffe's CPU formula rounds differently from PyTorch's op (a ``double`` literal inside a
float expression, a stepwise float computation), the layer evaluates Caffe's formula the way
Caffe's CPU build does, so results agree to the last bit or within an ulp of libm.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
import torch.nn.functional as F

from ..errors import CaffeFormatError
from .base import CaffeLayer, Shape, f32
from .fillers import fill as apply_filler
from .registry import register




class _Neuron(CaffeLayer):
    """Shared checks: exactly one bottom and one top."""

    in_place_ok = True

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        if len(param.bottom) != 1 or len(param.top) != 1:
            raise CaffeFormatError(f"{param.type} takes exactly 1 bottom and 1 top, got "
                                   f"{len(param.bottom)} and {len(param.top)}", layer=param.name)
        if not self.in_place_ok and param.top[0] == param.bottom[0]:
            raise CaffeFormatError(f"{param.type} cannot run in place (top == bottom "
                                   f"'{param.top[0]}')", layer=param.name)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        return [tuple(bottom_shapes[0])]


@register("ReLU")
class ReLU(_Neuron):
    """``y = max(x, 0) + negative_slope * min(x, 0)`` (Caffe's CPU form: +0.0 for x < 0 when
    the slope is 0). The gradient at x == 0 uses the slope, as Caffe's does."""

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        self.negative_slope = f32(param.relu_param.negative_slope)

    def forward(self, x):
        if self.negative_slope == 0.0:
            if self.may_overwrite_bottom and not torch.is_grad_enabled() and x._base is None:
                return (x.relu_(),)  # Caffe's in-place ReLU: no second activation buffer
            return (F.relu(x),)
        return (torch.where(x > 0, x, x * self.negative_slope),)


@register("PReLU")
class PReLU(_Neuron):
    """Leaky ReLU with a learned slope per channel (axis 1), or one shared slope.

    Blob 0 has shape ``(C,)``, or is a 0-axis scalar with ``channel_shared: true``; the default
    filler is the constant 0.25. Safe in place (Caffe caches the input; autograd does too).
    """

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        p = param.prelu_param
        shape = self.bottom_shapes[0]
        if len(shape) < 2:
            raise CaffeFormatError(f"PReLU needs a bottom with at least 2 axes, got {shape}",
                                   layer=param.name)
        self.channel_shared = bool(p.channel_shared)
        blob = self.add_blob(() if self.channel_shared else (shape[1],))
        if p.HasField("filler"):
            apply_filler(blob.data, p.filler, param.name)
        else:
            blob.data.fill_(0.25)

    def forward(self, x):
        slope = self.blobs[0].reshape(-1)
        if not self.channel_shared and x.shape[1] != slope.numel():
            raise CaffeFormatError(f"PReLU has {slope.numel()} slopes but the bottom has "
                                   f"{x.shape[1]} channels", layer=self.name)
        return (F.prelu(x, slope),)


@register("ELU")
class ELU(_Neuron):
    """``y = max(x, 0) + alpha * (exp(min(x, 0)) - 1)``: Caffe uses ``exp(.) - 1``, not
    ``expm1`` as ``F.elu`` does, which differs in the last bit for about 10% of inputs."""

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        self.alpha = f32(param.elu_param.alpha)

    def forward(self, x):
        neg = self.alpha * (torch.exp(torch.clamp(x, max=0)) - 1)
        return (torch.where(x > 0, x, neg),)


@register("Sigmoid")
class Sigmoid(_Neuron):
    """``y = 0.5 * tanh(0.5 * x) + 0.5`` evaluated in double then rounded, as Caffe's CPU code
    does (its ``0.5`` literals are doubles); float32 ``torch.sigmoid`` is off by 1 ulp often."""

    @staticmethod
    def caffe_sigmoid(x: torch.Tensor) -> torch.Tensor:
        """Caffe's CPU sigmoid, rounded once to ``x``'s dtype."""
        return (0.5 * torch.tanh(0.5 * x.double()) + 0.5).to(x.dtype)

    def forward(self, x):
        return (self.caffe_sigmoid(x),)


@register("TanH")
class TanH(_Neuron):
    """``y = tanh(x)``."""

    def forward(self, x):
        return (torch.tanh(x),)


@register("AbsVal")
class AbsVal(_Neuron):
    """``y = |x|``; gradient ``sign(x)`` with sign(0) = 0. Caffe refuses to run it in place."""

    in_place_ok = False

    def forward(self, x):
        return (torch.abs(x),)


@register("BNLL")
class BNLL(_Neuron):
    """``y = x + log(1 + exp(-x))`` for x > 0, else ``log(1 + exp(x))``: the exponential in
    float, the ``1. +`` and the log in double (Caffe's literal), then rounded to float.
    ``F.softplus`` uses log1p and a threshold, and differs."""

    def forward(self, x):
        e = torch.exp(-torch.abs(x))  # exp(-x) for x > 0, exp(x) otherwise: never overflows
        y = torch.clamp(x, min=0).double() + torch.log(1.0 + e.double())
        return (y.to(x.dtype),)


@register("Power")
class Power(_Neuron):
    """``y = (shift + scale * x) ** power``, computed stepwise in float as Caffe does
    (x scale, + shift, pow; each step skipped when it is the identity). When
    ``power * scale == 0`` the output is the constant 1 (power 0) or ``shift ** power``."""

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        p = param.power_param
        self.power, self.scale, self.shift = f32(p.power), f32(p.scale), f32(p.shift)

    def forward(self, x):
        if self.power * self.scale == 0:
            value = 1.0 if self.power == 0 else f32(np.float32(self.shift) ** np.float32(self.power))
            return (torch.full_like(x, value),)
        y = x
        if self.scale != 1:
            y = y * self.scale
        if self.shift != 0:
            y = y + self.shift
        if self.power != 1:
            # powf agrees best with pow evaluated in double and rounded once
            y = torch.pow(y.double(), self.power).to(x.dtype)
        return (y,)


@register("Exp")
class Exp(_Neuron):
    """``y = base ** (shift + scale * x)`` computed as Caffe does: ``outer * exp(inner * x)``
    with ``inner = ln(base) * scale`` (ln e taken as exactly 1 for the default base -1) and
    ``outer = base ** shift`` (exactly 1 when shift is 0), both constants in float32."""

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        p = param.exp_param
        base, scale, shift = np.float32(p.base), np.float32(p.scale), np.float32(p.shift)
        if base != -1 and base <= 0:
            raise CaffeFormatError(f"Exp base must be -1 (e) or positive, got {float(base)}",
                                   layer=param.name)
        log_base = np.float32(1) if base == -1 else np.float32(np.log(base))
        self.inner = f32(log_base * scale)
        if shift == 0:
            self.outer = 1.0
        elif base == -1:
            self.outer = f32(np.exp(shift))
        else:
            self.outer = f32(np.power(base, shift))

    def forward(self, x):
        # glibc's expf is correctly rounded; exp in double rounded once matches it
        y = torch.exp((x * self.inner).double()).to(x.dtype)
        if self.outer != 1:
            y = y * self.outer
        return (y,)


@register("Log")
class Log(_Neuron):
    """``y = ln(shift + scale * x) / ln(base)``: stepwise in float (scale, shift, log), then a
    multiply by the float32 constant ``1 / ln(base)`` unless the base is e (-1). The log is
    taken in double and rounded, which gives glibc's ``logf`` (correctly rounded); float32
    ``torch.log`` is vectorised and differs in the last bit for some inputs."""

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        p = param.log_param
        base = np.float32(p.base)
        if base != -1 and base <= 0:
            raise CaffeFormatError(f"Log base must be -1 (e) or positive, got {float(base)}",
                                   layer=param.name)
        log_base = np.float32(1) if base == -1 else np.float32(np.log(base))
        if log_base == 0:
            raise CaffeFormatError("Log base 1 has no logarithm", layer=param.name)
        self.base_scale = f32(np.float32(1) / log_base)
        self.scale, self.shift = f32(p.scale), f32(p.shift)

    def forward(self, x):
        y = x
        if self.scale != 1:
            y = y * self.scale
        if self.shift != 0:
            y = y + self.shift
        y = torch.log(y.double()).to(y.dtype)
        if self.base_scale != 1:
            y = y * self.base_scale
        return (y,)


@register("Threshold")
class Threshold(_Neuron):
    """``y = 1 if x > threshold else 0`` (strict). Caffe has no backward for it; neither does
    this layer (the output is detached from the graph)."""

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        self.threshold = f32(param.threshold_param.threshold)

    def forward(self, x):
        return ((x.detach() > self.threshold).to(x.dtype),)


@register("Dropout")
class Dropout(_Neuron):
    """Inverted dropout: at TRAIN keep each element with probability ``1 - p`` and scale kept
    ones by ``1 / (1 - p)``; at TEST the identity. The phase is the layer's (the net's, unless
    the layer sets its own), not ``nn.Module.training``.

    The scale is computed as Caffe computes it: ``1. / (1. - p)`` in double from the float32
    ``p``, rounded to float. BVLC has no ``scale_train``; where a schema carries it (other
    forks) and it is false, TRAIN keeps the mask unscaled and TEST multiplies by ``1 - p``.
    The random mask cannot match Caffe's RNG stream.
    """

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        p = param.dropout_param
        ratio = np.float32(p.dropout_ratio)
        if not 0 <= ratio < 1:
            raise CaffeFormatError(f"dropout_ratio must be in [0, 1), got {float(ratio)}",
                                   layer=param.name)
        self.ratio = float(ratio)
        self.scale = f32(1.0 / (1.0 - float(ratio)))
        self.scale_train = bool(getattr(p, "scale_train", True))

    def forward(self, x):
        if self.phase != "train":
            return (x if self.scale_train else x * f32(1.0 - self.ratio),)
        mask = torch.bernoulli(torch.full_like(x, 1.0 - self.ratio))
        y = x * mask
        if self.scale_train:
            y = y * self.scale
        return (y,)


class _SwishFn(torch.autograd.Function):
    """Swish's forward and Caffe's backward ``dy * (beta y + s (1. - beta y))``, whose
    ``1.`` is a double literal: the bracket and the product are evaluated in double."""

    @staticmethod
    def forward(ctx, x, beta: float):
        s = Sigmoid.caffe_sigmoid(x * beta)
        y = x * s
        ctx.save_for_backward(s, y)
        ctx.beta = beta
        return y

    @staticmethod
    def backward(ctx, dy):
        s, y = ctx.saved_tensors
        by = (y * ctx.beta).double()
        return (dy.double() * (by + s.double() * (1.0 - by))).to(dy.dtype), None


@register("Swish")
class Swish(_Neuron):
    """``y = x * sigmoid(beta * x)`` (``swish_param.beta``, default 1), the sigmoid being
    Caffe's Sigmoid layer's; the gradient is Caffe's formula from ``y`` (see ``_SwishFn``)."""

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        self.beta = f32(param.swish_param.beta)

    def forward(self, x):
        return (_SwishFn.apply(x, self.beta),)


@register("Clip")
class Clip(_Neuron):
    """``y = max(min, min(x, max))`` as C++'s ``std::max(min, std::min(x, max))``: NaN gives
    ``min`` (``torch.clamp`` keeps NaN). The gradient passes where ``min <= x <= max``, bounds
    included, and is 0 elsewhere (NaN too), as Caffe's backward does."""

    def __init__(self, param, bottom_shapes, phase="test"):
        super().__init__(param, bottom_shapes, phase)
        p = param.clip_param
        missing = [f for f in ("min", "max") if not p.HasField(f)]
        if missing:
            raise CaffeFormatError(f"Clip needs clip_param {{ min max }} (required), "
                                   f"{' and '.join(missing)} not given", layer=param.name)
        self.min, self.max = f32(p.min), f32(p.max)

    def forward(self, x):
        d = x.detach()
        upper = torch.where(d > self.max, torch.full_like(d, self.max), d)  # std::min(x, max)
        clipped = torch.where(upper > self.min, upper, torch.full_like(d, self.min))
        inside = (d >= self.min) & (d <= self.max)
        return (torch.where(inside, x, clipped),)
