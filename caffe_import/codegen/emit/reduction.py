"""Reduction: SUM, ASUM, SUMSQ or MEAN over the axes from Caffe's ``axis`` on, times
``coeff``."""
from __future__ import annotations

from ...layers.reduction import ASUM, MEAN, SUMSQ, Reduction
from .base import Emission, LayerContext, emits, literal


@emits(Reduction)
def emit_reduction(layer, ctx: LayerContext) -> Emission:
    rank, axis = len(ctx.bottom_shapes[0]), layer.axis
    flat = (f"{ctx.x}.reshape(-1)" if axis == 0 else ctx.x if axis == rank - 1
            else f"{ctx.x}.flatten({axis})")
    term = {ASUM: f"{flat}.abs()", SUMSQ: f"{flat}.square()"}.get(layer.op, flat)
    expr = f"{term}.sum(dim=-1)"
    if layer.op == MEAN:
        expr += f" * ({literal(layer.coeff)} / {flat}.shape[-1])"
    elif layer.coeff != 1.0:
        expr += f" * {literal(layer.coeff)}"
    return Emission(forward=[f"{ctx.y} = {expr}"])
