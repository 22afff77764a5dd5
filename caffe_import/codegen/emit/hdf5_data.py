"""HDF5Data in a net built with ``data=True`` (it reads its files there): its tops are
``forward``'s arguments, as in a net built without data, where it is a net input like the
other data layers (``emit.data``)."""
from __future__ import annotations

from ...layers.hdf5_data import HDF5Data
from .base import Emission, LayerContext, emits


@emits(HDF5Data)
def emit_read_tops(layer, ctx: LayerContext) -> Emission:
    """The tops of a data layer that reads (``data=True``) are ``forward``'s arguments: the
    generated module does not read; the caller feeds the batches. Also the emitter of
    ``emit.data_read``'s and ``emit.window_data``'s layers."""
    return Emission(arguments=ctx.tops)
