"""Eltwise: sum (with coefficients) / product / max in Caffe's order of the bottoms (MAX
keeps the first of equal inputs, as Caffe's strict ``>`` does, and so sends it the gradient)."""
from __future__ import annotations

from ...layers.eltwise import MAX, PROD, SUM, Eltwise
from .base import Emission, LayerContext, emits, literal


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
