"""The MobileNet ports: ``ReLU6`` (the runtime's ``caffe_relu6``, the port's strict gradient)
and both depthwise convolutions (grouped ``nn.Conv2d``: their built ``group`` and
``num_output`` are what the port computes)."""
from __future__ import annotations

from ...layers.mobilenet import ConvolutionDepthwise, DepthwiseConvolution, ReLU6
from .base import Emission, LayerContext, emits
from .conv import emit_conv

emits(ConvolutionDepthwise, DepthwiseConvolution)(emit_conv)


@emits(ReLU6)
def emit_relu6(layer, ctx: LayerContext) -> Emission:
    return Emission(forward=[f"{ctx.y} = caffe_relu6({ctx.x})"], helpers=("caffe_relu6",))
