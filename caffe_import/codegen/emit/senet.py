"""SENet's ``Axpy``: ``a * x + y`` with ``a``'s ``(N, C)`` scaling each channel of ``x``."""
from __future__ import annotations

from ...layers.senet import Axpy
from .base import Emission, LayerContext, emits


@emits(Axpy)
def emit_axpy(layer, ctx: LayerContext) -> Emission:
    a, x, y = ctx.bottoms
    ones = ", 1" * (len(ctx.bottom_shapes[1]) - 2)
    return Emission(forward=[f"{ctx.y} = {a}.reshape({a}.shape[0], {a}.shape[1]{ones}) * {x} "
                             f"+ {y}"])
