"""Layers that need no code: the net's inputs (``Input`` and the data layers standing in for
them are ``forward``'s arguments) and ``Silence`` (its bottoms are simply not returned)."""
from __future__ import annotations

from ...layers.data import DataInput
from ...layers.input import Input
from ...layers.misc import Silence
from .base import Emission, LayerContext, emits


@emits(Input, DataInput)
def emit_nothing(layer, ctx: LayerContext) -> Emission:
    return Emission()


@emits(Silence)
def emit_silence(layer, ctx: LayerContext) -> Emission:
    """The bottoms are deleted: Caffe computes them and shows them to no one."""
    names = ", ".join(dict.fromkeys(b for b in ctx.bottoms if b not in ctx.inputs))
    return Emission(forward=[f"del {names}"] if names else [])
