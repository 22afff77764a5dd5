"""Softmax in Caffe's order of operations (the layer module's own ``caffe_softmax``)."""
from __future__ import annotations

from ...layers.softmax import Softmax
from .base import Emission, LayerContext, emits


@emits(Softmax)
def emit_softmax(layer, ctx: LayerContext) -> Emission:
    return Emission(forward=[f"{ctx.y} = caffe_softmax({ctx.x}, {layer.axis})"],
                    helpers=("caffe_softmax",))
