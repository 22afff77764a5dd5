"""ShuffleNet's ``ShuffleChannel``: channels as ``(group, C / group)`` transposed."""
from __future__ import annotations

from ....forks.shufflenet.layers import ShuffleChannel
from ..base import Emission, LayerContext, emits


@emits(ShuffleChannel)
def emit_shuffle_channel(layer, ctx: LayerContext) -> Emission:
    x, g = ctx.x, layer.group
    return Emission(forward=[f"{ctx.y} = {x}.reshape({x}.shape[0], {g}, {x}.shape[1] // {g}, "
                             f"*{x}.shape[2:]).transpose(1, 2).reshape({x}.shape)"])
