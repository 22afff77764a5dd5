"""HDF5Output: model.py imports only torch, so it writes no file. The layer's attribute is a
hook, ``None`` by default: set it to a callable and each forward calls it with the file name
Caffe would write and the two datasets (``{"data": ..., "label": ...}``, float32, Caffe's
legacy 4-D (N, C, H, W), no gradient), e.g. to append them with ``h5py``."""
from __future__ import annotations

from ...layers.base import legacy_4d
from ...layers.hdf5_output import DATASETS, HDF5Output
from .base import Emission, LayerContext, emits


@emits(HDF5Output)
def emit_hdf5_output(layer, ctx: LayerContext) -> Emission:
    rows = []
    for var, shape, name in zip(ctx.bottoms, ctx.bottom_shapes, DATASETS):
        _, c, h, w = legacy_4d(shape, layer.name, f"bottom {name}")
        rows.append(f'"{name}": {var}.detach().float().reshape({var}.shape[0], {c}, {h}, {w})')
    hook = ctx.self_attr
    note = f"a callable(file_name, datasets) receives what Caffe writes to {layer.file_name!r}"
    return Emission(init=[f"{hook} = None  # HDF5Output: {note}"],
                    forward=[f"if {hook} is not None:  # HDF5Output {ctx.name!r}",
                             f"    {hook}({layer.file_name!r}, {{{', '.join(rows)}}})"])
