"""SegNet: its ``BN`` (``INFERENCE``: ``x * scale + shift``; ``LEARN``: the batch's
statistics, ``E[x^2] - E[x]^2`` and eps 1e-9, as the fork computes them, through the
runtime's ``caffe_segnet_bn``), its ``Upsample`` (the runtime's ``caffe_unpool`` at the pooling
mask) and its data layer (an input)."""
from __future__ import annotations

from ....forks.segnet.layers import INFERENCE, DenseImageData, SegNetBN, SegNetUpsample
from ..base import Emission, LayerContext, ParamMap, emits
from ..input import emit_nothing

emits(DenseImageData)(emit_nothing)


@emits(SegNetBN)
def emit_segnet_bn(layer, ctx: LayerContext) -> Emission:
    shape = f"(1, {layer.channels}, 1, 1)"
    a = ctx.self_attr
    init = [f"{a} = nn.ParameterDict({{\"scale\": nn.Parameter(torch.empty{shape}), "
            f"\"shift\": nn.Parameter(torch.empty{shape})}})"]
    params = [ParamMap("scale", 0), ParamMap("shift", 1)]
    if layer.mode == INFERENCE:
        return Emission(init=init, forward=[f"{ctx.y} = {ctx.x} * {a}.scale + {a}.shift"],
                        params=params)
    tops = ", ".join(ctx.tops)
    if len(ctx.tops) == 1:
        tops += ", _, _"
    elif len(ctx.tops) == 2:
        tops += ", _"
    return Emission(init=init, params=params, helpers=("caffe_segnet_bn",),
                    forward=[f"{tops} = caffe_segnet_bn({ctx.x}, {a}.scale, {a}.shift)"])


@emits(SegNetUpsample)
def emit_segnet_upsample(layer, ctx: LayerContext) -> Emission:
    x, mask = ctx.bottoms
    if layer.size is not None:
        h, w = layer.size
    else:
        h = f"{x}.shape[2] * {layer.scale[0]}" + (f" - {layer.pad_out[0]}" if layer.pad_out[0]
                                                  else "")
        w = f"{x}.shape[3] * {layer.scale[1]}" + (f" - {layer.pad_out[1]}" if layer.pad_out[1]
                                                  else "")
    return Emission(forward=[f"{ctx.y} = caffe_unpool({x}, {mask}, {h}, {w})"],
                    helpers=("caffe_unpool",))
