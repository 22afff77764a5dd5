"""Silence: its bottoms are deleted (Caffe computes them and shows them to no one)."""
from __future__ import annotations

from ...layers.misc import Parameter, Silence
from .base import Emission, LayerContext, ParamMap, emits, literal


@emits(Silence)
def emit_silence(layer, ctx: LayerContext) -> Emission:
    """The bottoms are deleted: Caffe computes them and shows them to no one."""
    names = ", ".join(dict.fromkeys(b for b in ctx.bottoms if b not in ctx.inputs))
    return Emission(forward=[f"del {names}"] if names else [])


@emits(Parameter)
def emit_parameter(layer, ctx: LayerContext) -> Emission:
    """Its blob as ``<layer>.weight`` of a ``ParameterDict``; the top is a copy of it."""
    shape = literal(tuple(layer.blobs[0].shape))
    return Emission(init=[f'{ctx.self_attr} = nn.ParameterDict({{"weight": '
                          f"nn.Parameter(torch.empty({shape}))}})"],
                    forward=[f"{ctx.y} = {ctx.self_attr}.weight.clone()"],
                    params=[ParamMap("weight", 0)])
