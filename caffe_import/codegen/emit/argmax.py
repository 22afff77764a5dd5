"""ArgMax: Caffe's top-k (ties toward the larger index: the layer module's own
``caffe_topk``), along an axis or over each item."""
from __future__ import annotations

from ...layers.argmax import ArgMax
from .base import Emission, LayerContext, emits


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
