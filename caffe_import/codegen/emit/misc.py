"""Silence: its bottoms are deleted (Caffe computes them and shows them to no one)."""
from __future__ import annotations

from ...layers.misc import Parameter, Silence
from .base import Emission, LayerContext, ParamMap, emits, literal


@emits(Silence)
def emit_silence(layer, ctx: LayerContext) -> Emission:
    """Nothing: Caffe computes the bottoms and shows them to no one, and ``forward`` drops
    every blob after its last reader anyway (a ``del`` here would drop a blob that a later
    layer still reads)."""
    return Emission()


@emits(Parameter)
def emit_parameter(layer, ctx: LayerContext) -> Emission:
    """Its blob as ``<layer>.weight`` of a ``ParameterDict``; the top is a copy of it."""
    shape = literal(tuple(layer.blobs[0].shape))
    return Emission(init=[f'{ctx.self_attr} = nn.ParameterDict({{"weight": '
                          f"nn.Parameter(torch.empty({shape}))}})"],
                    forward=[f"{ctx.y} = {ctx.self_attr}.weight.clone()"],
                    params=[ParamMap("weight", 0)])
