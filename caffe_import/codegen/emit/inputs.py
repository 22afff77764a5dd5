"""Layers that need no code: the net's inputs (``Input`` and the data layers standing in for
them are ``forward``'s arguments) and ``Silence`` (its bottoms are simply not returned)."""
from __future__ import annotations

from ...layers.data import DataInput
from ...layers.input import Input
from ...layers.misc import Silence
from .base import Emission, LayerContext, emits


@emits(Input, DataInput, Silence)
def emit_nothing(layer, ctx: LayerContext) -> Emission:
    return Emission()
