"""DeepLab v1's ``Padding``: ``F.pad`` of both spatial axes (negative values crop)."""
from __future__ import annotations

from ....forks.deeplab_v1.layers import Padding
from ..base import Emission, LayerContext, emits


@emits(Padding)
def emit_padding(layer, ctx: LayerContext) -> Emission:
    b, e = layer.beg, layer.end
    return Emission(forward=[f"{ctx.y} = F.pad({ctx.x}, [{b}, {e}, {b}, {e}])"])
