"""Embed: ``F.embedding`` of the bottom's integer values (Caffe's float indices, truncated)
on the layer's ``weight`` (``input_dim x num_output``), plus its ``bias``."""
from __future__ import annotations

from ...layers.embed import Embed
from .base import Emission, LayerContext, ParamMap, emits, example_input, integers, literal


@emits(Embed)
def emit_embed(layer, ctx: LayerContext) -> Emission:
    names = ["weight"] + (["bias"] if layer.bias_term else [])
    items = ", ".join(f'"{n}": nn.Parameter(torch.empty({literal(tuple(b.shape))}))'
                      for n, b in zip(names, layer.blobs))
    expr = f"F.embedding({ctx.x}.detach().long(), {ctx.self_attr}.weight)"
    if layer.bias_term:
        expr += f" + {ctx.self_attr}.bias"
    return Emission(init=[f"{ctx.self_attr} = nn.ParameterDict({{{items}}})"],
                    forward=[f"{ctx.y} = {expr}"],
                    params=[ParamMap(n, i) for i, n in enumerate(names)])


@example_input(Embed)
def example_indices(layer, index: int, shape, generator):
    """Indices of the layer's rows."""
    return integers(shape, layer.input_dim, generator)
