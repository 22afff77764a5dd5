"""Crop: a slice of bottom 0 at the layer's offsets (constants here; net_spec's coordinate maps
computed them), as long as bottom 1 along every cropped axis."""
from __future__ import annotations

from ...layers.crop import Crop
from .base import Emission, LayerContext, emits


@emits(Crop)
def emit_crop(layer, ctx: LayerContext) -> Emission:
    x, ref = ctx.bottoms
    index = [":"] * layer.axis
    for i, off in enumerate(layer.offsets):
        axis = layer.axis + i
        index.append(f"{off}:{off} + {ref}.shape[{axis}]" if off else f":{ref}.shape[{axis}]")
    return Emission(forward=[f"{ctx.y} = {x}[{', '.join(index)}]"])
