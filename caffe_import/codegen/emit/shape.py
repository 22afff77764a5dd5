"""Flatten, Reshape and Tile: shape arithmetic written out from the layer's fields (Caffe's
0 = copy the bottom's size, -1 = infer)."""
from __future__ import annotations

from ...layers.base import canonical_axis
from ...layers.shape import Flatten, Reshape, Tile
from .base import Emission, LayerContext, emits, literal


@emits(Flatten)
def emit_flatten(layer, ctx: LayerContext) -> Emission:
    p, rank = layer.param.flatten_param, len(ctx.bottom_shapes[0])
    start = canonical_axis(p.axis, rank, layer.name)
    end = canonical_axis(p.end_axis, rank, layer.name, "end_axis")
    return Emission(forward=[f"{ctx.y} = {ctx.x}.flatten({start}, {end})"])


@emits(Reshape)
def emit_reshape(layer, ctx: LayerContext) -> Emission:
    p, n, x = layer.param.reshape_param, len(ctx.bottom_shapes[0]), ctx.x
    start = p.axis if p.axis >= 0 else n + p.axis + 1
    end = n if p.num_axes == -1 else start + p.num_axes
    dims = [f"{x}.shape[{i}]" for i in range(start)]
    dims += [f"{x}.shape[{start + i}]" if d == 0 else str(d) for i, d in enumerate(p.shape.dim)]
    dims += [f"{x}.shape[{i}]" for i in range(end, n)]
    return Emission(forward=[f"{ctx.y} = {x}.reshape({', '.join(dims)})"])


@emits(Tile)
def emit_tile(layer, ctx: LayerContext) -> Emission:
    reps = [1] * len(ctx.bottom_shapes[0])
    reps[layer.axis] = layer.tiles
    return Emission(forward=[f"{ctx.y} = {ctx.x}.repeat{literal(tuple(reps))}"])
