"""Flatten, Reshape, Tile and ArgMax, Reduction: shape arithmetic written out from the layer's
fields (Caffe's 0 = copy the bottom's size, -1 = infer), Caffe's top-k tie rule."""
from __future__ import annotations

from ...layers.argmax import ArgMax
from ...layers.base import canonical_axis
from ...layers.reduction import ASUM, MEAN, SUMSQ, Reduction
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


@emits(ArgMax)
def emit_argmax(layer, ctx: LayerContext) -> Emission:
    x, y = ctx.x, ctx.y
    if layer.axis is not None:
        which = "values" if layer.out_max_val else "index.to(values.dtype)"
        return Emission(forward=[f"values, index = caffe_topk({x}.detach(), {layer.top_k}, "
                                 f"{layer.axis})", f"{y} = {which}"], helpers=("caffe_topk",))
    (out,) = layer.top_shapes(ctx.bottom_shapes[:1])
    parts = "[index.to(values.dtype), values]" if layer.out_max_val else "[index.to(values.dtype)]"
    rest = "".join(f", {d}" for d in out[1:])
    return Emission(forward=[f"values, index = caffe_topk({x}.detach().flatten(1), "
                             f"{layer.top_k}, 1)",
                             f"{y} = torch.cat({parts}, dim=1).reshape({x}.shape[0]{rest})"],
                    helpers=("caffe_topk",))


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
