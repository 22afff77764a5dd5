"""The YOLOv3 ports: nearest ``Upsample`` (``repeat_interleave`` on both axes) and their
Pooling, whose extra output cells the pooling emitter writes with the runtime's pooling."""
from __future__ import annotations

from ....forks.yolo.layers import DarknetPooling, UpsampleNearest
from ..base import Emission, LayerContext, emits
from ..pooling import emit_pooling

emits(DarknetPooling)(emit_pooling)


@emits(UpsampleNearest)
def emit_upsample_nearest(layer, ctx: LayerContext) -> Emission:
    return Emission(init=[f"{ctx.self_attr} = nn.Upsample(scale_factor={layer.scale}, "
                          f'mode="nearest")'],
                    forward=[f"{ctx.y} = {ctx.self_attr}({ctx.x})"])
