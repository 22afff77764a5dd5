"""Concat, Slice, Split and Eltwise: ``torch.cat``, ``torch.tensor_split`` at Caffe's slice
points, plain names for Split's shared tops, and Eltwise's sum / product / max in Caffe's
order (MAX keeps the first of equal inputs, as Caffe's strict ``>`` does)."""
from __future__ import annotations

from ...layers.combine import Concat, Slice, Split
from ...layers.eltwise import MAX, PROD, SUM, Eltwise
from .base import Emission, LayerContext, emits, literal


@emits(Concat)
def emit_concat(layer, ctx: LayerContext) -> Emission:
    if len(ctx.bottoms) == 1:
        return Emission(forward=[f"{ctx.y} = {ctx.x}"])
    return Emission(forward=[f"{ctx.y} = torch.cat([{', '.join(ctx.bottoms)}], "
                             f"dim={layer.axis})"])


@emits(Slice)
def emit_slice(layer, ctx: LayerContext) -> Emission:
    tops = ", ".join(ctx.tops) + ("," if len(ctx.tops) == 1 else "")
    if layer.points:
        cut = f"{literal(list(layer.points))}"
    else:
        cut = str(len(ctx.tops))
    return Emission(forward=[f"{tops} = torch.tensor_split({ctx.x}, {cut}, dim={layer.axis})"])


@emits(Split)
def emit_split(layer, ctx: LayerContext) -> Emission:
    return Emission(forward=[f"{top} = {ctx.x}" for top in ctx.tops if top != ctx.x])


@emits(Eltwise)
def emit_eltwise(layer, ctx: LayerContext) -> Emission:
    xs = ctx.bottoms
    if layer.op == SUM:
        terms = [x if c == 1.0 else f"{x} * {literal(c)}" for c, x in zip(layer.coeffs, xs)]
        expr = " + ".join(terms)
    elif layer.op == PROD:
        expr = " * ".join(xs)
    else:
        assert layer.op == MAX
        lines = [f"{ctx.y} = torch.where({xs[0]} > {xs[1]}, {xs[0]}, {xs[1]})"]
        lines += [f"{ctx.y} = torch.where({x} > {ctx.y}, {x}, {ctx.y})" for x in xs[2:]]
        return Emission(forward=lines)
    return Emission(forward=[f"{ctx.y} = {expr}"])
