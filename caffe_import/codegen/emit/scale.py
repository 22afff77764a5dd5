"""Scale and Bias: the operand broadcast from Caffe's ``axis`` (a second bottom, or the layer's
params held in a ``ParameterDict``: ``weight`` / ``bias``)."""
from __future__ import annotations

from ...layers.scale import Bias, Scale
from .base import Emission, LayerContext, ParamMap, broadcast, emits, literal


def _start(layer, ctx: LayerContext, ndim: int) -> int:
    rank = len(ctx.bottom_shapes[0])
    return 0 if ndim == 0 else (layer.axis + rank if layer.axis < 0 else layer.axis)


def _params(ctx: LayerContext, names: list[str], shapes: list[tuple]) -> str:
    items = ", ".join(f'"{n}": nn.Parameter(torch.empty({literal(tuple(s))}))'
                      for n, s in zip(names, shapes))
    return f"{ctx.self_attr} = nn.ParameterDict({{{items}}})"


@emits(Scale)
def emit_scale(layer, ctx: LayerContext) -> Emission:
    rank = len(ctx.bottom_shapes[0])
    names, maps = [], []
    if layer.two_bottoms:
        factor, ndim = ctx.bottoms[1], len(ctx.bottom_shapes[1])
    else:
        names.append("weight")
        factor, ndim = f"{ctx.self_attr}.weight", layer.blobs[0].dim()
    if layer.bias_term:
        names.append("bias")
    maps = [ParamMap(n, i) for i, n in enumerate(names)]
    start = _start(layer, ctx, ndim)
    expr = f"{ctx.x} * {broadcast(factor, start, ndim, rank)}"
    if layer.bias_term:
        expr += f" + {broadcast(f'{ctx.self_attr}.bias', start, ndim, rank)}"
    init = [_params(ctx, names, [tuple(b.shape) for b in layer.blobs])] if names else []
    return Emission(init=init, forward=[f"{ctx.y} = {expr}"], params=maps)


@emits(Bias)
def emit_bias(layer, ctx: LayerContext) -> Emission:
    rank = len(ctx.bottom_shapes[0])
    if layer.two_bottoms:
        ndim = len(ctx.bottom_shapes[1])
        return Emission(forward=[f"{ctx.y} = {ctx.x} + "
                                 f"{broadcast(ctx.bottoms[1], _start(layer, ctx, ndim), ndim, rank)}"])
    ndim = layer.blobs[0].dim()
    operand = broadcast(f"{ctx.self_attr}.bias", _start(layer, ctx, ndim), ndim, rank)
    return Emission(init=[_params(ctx, ["bias"], [tuple(layer.blobs[0].shape)])],
                    forward=[f"{ctx.y} = {ctx.x} + {operand}"], params=[ParamMap("bias", 0)])
