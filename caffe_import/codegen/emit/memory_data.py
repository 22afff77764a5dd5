"""MemoryData: the batch Caffe's ``set_input_arrays`` would serve is ``forward``'s argument."""
from __future__ import annotations

from ...layers.memory_data import MemoryData
from .base import Emission, LayerContext, emits


@emits(MemoryData)
def emit_memory_data(layer, ctx: LayerContext) -> Emission:
    """The batch Caffe's ``set_input_arrays`` would serve is ``forward``'s argument."""
    return Emission(arguments=ctx.tops)
