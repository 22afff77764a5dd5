"""InnerProduct as ``nn.Linear`` over the axes from Caffe's ``axis`` on, flattened (the
``transpose`` layout is transposed when the weights are written)."""
from __future__ import annotations

from ...layers.inner_product import InnerProduct
from .base import Emission, LayerContext, ParamMap, emits


@emits(InnerProduct)
def emit_inner_product(layer, ctx: LayerContext) -> Emission:
    bias = "" if layer.bias_term else ", bias=False"
    weight = (ParamMap("weight", 0, lambda t: t.t(), lambda g: g.t()) if layer.transpose
              else ParamMap("weight", 0))
    rank = len(ctx.bottom_shapes[0])
    x = ctx.x if layer.axis == rank - 1 else f"{ctx.x}.flatten({layer.axis})"
    return Emission(init=[f"{ctx.self_attr} = nn.Linear({layer.k}, {layer.num_output}{bias})"],
                    forward=[f"{ctx.y} = {ctx.self_attr}({x})"],
                    params=[weight] + ([ParamMap("bias", 1)] if layer.bias_term else []))
