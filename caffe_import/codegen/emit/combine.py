"""Concat, Slice and Split: ``torch.cat``, ``torch.tensor_split`` at Caffe's slice points,
plain names for Split's shared tops."""
from __future__ import annotations

from ...layers.combine import Concat, Slice, Split
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
