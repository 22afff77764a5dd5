"""The element-wise layers: ``nn.ReLU`` (in place where Caffe's is), ``nn.LeakyReLU``,
``nn.PReLU``, ``nn.Tanh``, ``nn.Dropout``; Caffe's own formulas (sigmoid, ELU, BNLL, Power,
Exp, Log in Caffe's precision) through the runtime's functions."""
from __future__ import annotations

from ...layers.neuron import (BNLL, ELU, AbsVal, Clip, Dropout, Exp, Log, Power, PReLU, ReLU,
                              Sigmoid, Swish, TanH, Threshold)
from .base import Emission, LayerContext, ParamMap, emits, literal


def _module(ctx: LayerContext, make: str) -> Emission:
    return Emission(init=[f"{ctx.self_attr} = {make}"],
                    forward=[f"{ctx.y} = {ctx.self_attr}({ctx.x})"])


def _call(ctx: LayerContext, fn: str, *args) -> Emission:
    rest = "".join(f", {literal(a)}" for a in args)
    return Emission(forward=[f"{ctx.y} = {fn}({ctx.x}{rest})"], helpers=(fn,))


@emits(ReLU)
def emit_relu(layer, ctx: LayerContext) -> Emission:
    inplace = ", inplace=True" if ctx.in_place else ""
    if layer.negative_slope == 0.0:
        return _module(ctx, f"nn.ReLU({inplace.lstrip(', ')})")
    return _module(ctx, f"nn.LeakyReLU({literal(layer.negative_slope)}{inplace})")


@emits(PReLU)
def emit_prelu(layer, ctx: LayerContext) -> Emission:
    count = 1 if layer.channel_shared else int(layer.blobs[0].numel())
    out = _module(ctx, f"nn.PReLU({count})")
    shape = tuple(layer.blobs[0].shape)
    out.params.append(ParamMap("weight", 0, lambda t: t.reshape(-1),
                               lambda g, s=shape: g.reshape(s)))
    return out


@emits(TanH)
def emit_tanh(layer, ctx: LayerContext) -> Emission:
    return _module(ctx, "nn.Tanh()")


@emits(Dropout)
def emit_dropout(layer, ctx: LayerContext) -> Emission:
    """``nn.Dropout``; a fork's ``scale_train: false`` (TRAIN keeps the mask unscaled, TEST
    multiplies by ``1 - p``) is ``nn.Dropout``'s output times ``1 - p`` in both modes."""
    out = _module(ctx, f"nn.Dropout({literal(layer.ratio)})")
    if not layer.scale_train:
        out.forward[0] += f" * (1 - {ctx.self_attr}.p)  # scale_train: false"
    return out


@emits(AbsVal)
def emit_absval(layer, ctx: LayerContext) -> Emission:
    return Emission(forward=[f"{ctx.y} = torch.abs({ctx.x})"])


@emits(Threshold)
def emit_threshold(layer, ctx: LayerContext) -> Emission:
    return Emission(forward=[f"{ctx.y} = ({ctx.x}.detach() > {literal(layer.threshold)})"
                             f".to({ctx.x}.dtype)  # Caffe has no gradient here"])


@emits(Sigmoid)
def emit_sigmoid(layer, ctx: LayerContext) -> Emission:
    return _call(ctx, "caffe_sigmoid")


@emits(ELU)
def emit_elu(layer, ctx: LayerContext) -> Emission:
    return _call(ctx, "caffe_elu", layer.alpha)


@emits(BNLL)
def emit_bnll(layer, ctx: LayerContext) -> Emission:
    return _call(ctx, "caffe_bnll")


@emits(Power)
def emit_power(layer, ctx: LayerContext) -> Emission:
    return _call(ctx, "caffe_power", layer.power, layer.scale, layer.shift)


@emits(Exp)
def emit_exp(layer, ctx: LayerContext) -> Emission:
    return _call(ctx, "caffe_exp", layer.inner, layer.outer)


@emits(Log)
def emit_log(layer, ctx: LayerContext) -> Emission:
    return _call(ctx, "caffe_log", layer.scale, layer.shift, layer.base_scale)


@emits(Swish)
def emit_swish(layer, ctx: LayerContext) -> Emission:
    """Caffe's sigmoid and Caffe's backward formula (``caffe_swish``)."""
    return _call(ctx, "caffe_swish", layer.beta)


@emits(Clip)
def emit_clip(layer, ctx: LayerContext) -> Emission:
    """``caffe_clip``: NaN gives ``min``; the gradient passes on the bounds too."""
    return _call(ctx, "caffe_clip", layer.min, layer.max)
