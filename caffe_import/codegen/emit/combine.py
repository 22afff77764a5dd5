"""Concat, Slice and Split: ``torch.cat``, ``torch.tensor_split`` at Caffe's slice points,
plain names for Split's shared tops."""
from __future__ import annotations

from ...layers.combine import BatchReindex, Concat, Filter, Slice, Split
from .base import Emission, LayerContext, emits, example_input, integers, literal


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


@emits(Filter)
def emit_filter(layer, ctx: LayerContext) -> Emission:
    """``caffe_filter``: the selected rows (a data-dependent batch)."""
    tops = ", ".join(ctx.tops) + ("," if len(ctx.tops) == 1 else "")
    args = ", ".join((ctx.bottoms[-1], *ctx.bottoms[:-1]))
    return Emission(forward=[f"{tops} = caffe_filter({args})"], helpers=("caffe_filter",))


@emits(BatchReindex)
def emit_batch_reindex(layer, ctx: LayerContext) -> Emission:
    """``index_select`` by the indices truncated toward zero (no gradient to them)."""
    return Emission(forward=[f"{ctx.y} = {ctx.x}.index_select(0, "
                             f"{ctx.bottoms[1]}.detach().to(torch.long))"])


@example_input(Filter)
def example_selector(layer, index: int, shape, generator):
    """A selector of 0s and 1s (some rows kept, some not)."""
    return integers(shape, 2, generator) if index == len(layer.bottom_shapes) - 1 else None


@example_input(BatchReindex)
def example_batch_index(layer, index: int, shape, generator):
    """Indices into the data's batch."""
    return integers(shape, layer.bottom_shapes[0][0], generator) if index == 1 else None
