"""Silence: its bottoms are deleted (Caffe computes them and shows them to no one)."""
from __future__ import annotations

from ...layers.misc import Silence
from .base import Emission, LayerContext, emits


@emits(Silence)
def emit_silence(layer, ctx: LayerContext) -> Emission:
    """The bottoms are deleted: Caffe computes them and shows them to no one."""
    names = ", ".join(dict.fromkeys(b for b in ctx.bottoms if b not in ctx.inputs))
    return Emission(forward=[f"del {names}"] if names else [])
