"""HDF5Output (``hdf5_output_param.file_name``): a sink that writes its two bottoms to an HDF5
file, as Caffe's ``HDF5OutputLayer`` does.

The file is created empty (truncated) when the layer is built, as Caffe's ``LayerSetUp``
creates it; each forward writes the bottoms as float32 datasets ``data`` and ``label``, each
reshaped to Caffe's legacy 4-D (N, C, H, W) (missing trailing axes are 1; more than 4 axes is
an error, as Caffe's ``num()``/``channels()`` accessors refuse them). Caffe's own layer makes
those datasets on the first forward and fails on the second (the names exist); here later
forwards append their rows, so a file written by one forward is what Caffe writes and more
forwards extend it. Every write is atomic: the file under its name is always a complete HDF5
file (each forward copies it to a temp file, appends, and replaces it). The layer has no tops
and passes no gradient (Caffe's backward does nothing).
"""
from __future__ import annotations

import os
import shutil
from typing import Sequence

import h5py
import numpy as np
import torch

from ..errors import CaffeFormatError
from ..io.atomic import atomic_path
from .base import DTYPE_FLOAT32, CaffeLayer, Shape, check_arity, legacy_4d, tracing
from .registry import register

#: Caffe's HDF5_DATA_DATASET_NAME and HDF5_DATA_LABEL_NAME
DATASETS = ("data", "label")


def _rows_shape(shape: Sequence[int], what: str, layer: str) -> tuple[int, int, int, int]:
    if not shape:
        raise CaffeFormatError(f"HDF5Output writes (N, C, H, W) rows: bottom {what} has no "
                               f"axes", layer=layer)
    return legacy_4d(shape, layer, f"bottom {what}")


@register("HDF5Output")
class HDF5Output(CaffeLayer):
    """Bottoms ``data`` and ``label`` (same N); no tops. See the module docstring."""

    dtype_policy = DTYPE_FLOAT32
    host_reads = "its bottoms, to write them to the HDF5 file"
    export_unsupported = "HDF5Output writes an HDF5 file on every forward"

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        check_arity(param, 2, 0, "data, label")
        self.file_name = str(param.hdf5_output_param.file_name)
        if not self.file_name:
            raise CaffeFormatError("HDF5Output needs hdf5_output_param { file_name }",
                                   layer=param.name)
        self.top_shapes(self.bottom_shapes)
        try:
            with atomic_path(self.file_name, suffix=".h5") as tmp:
                h5py.File(tmp, "w").close()
        except OSError as exc:
            raise CaffeFormatError(f"cannot create the HDF5 file '{self.file_name}': {exc}",
                                   layer=param.name) from None

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        data, label = (_rows_shape(s, w, self.name) for s, w in zip(bottom_shapes, DATASETS))
        if data[0] != label[0]:
            raise CaffeFormatError(f"data and label must have the same batch size, got "
                                   f"{data[0]} and {label[0]}", layer=self.name)
        return []

    def forward(self, data: torch.Tensor, label: torch.Tensor):
        shapes = [_rows_shape(t.shape, w, self.name) for t, w in zip((data, label), DATASETS)]
        self.top_shapes([tuple(data.shape), tuple(label.shape)])
        if data.device.type == "meta" or tracing():
            return ()
        rows = [t.detach().to("cpu", torch.float32).numpy().reshape(s)
                for t, s in zip((data, label), shapes)]
        self.append(dict(zip(DATASETS, rows)))
        return ()

    def append(self, rows: dict[str, np.ndarray]) -> None:
        """Append ``rows`` (name -> 4-D float32 array) to the file, atomically."""
        try:
            with atomic_path(self.file_name, suffix=".h5") as tmp:
                if os.path.exists(self.file_name):
                    shutil.copyfile(self.file_name, tmp)
                with h5py.File(tmp, "a") as f:
                    for name, array in rows.items():
                        self._append_one(f, name, array)
        except OSError as exc:
            raise CaffeFormatError(f"cannot write the HDF5 file '{self.file_name}': {exc}",
                                   layer=self.name) from None

    def _append_one(self, f, name: str, array: np.ndarray) -> None:
        if name not in f:
            f.create_dataset(name, data=array, maxshape=(None, *array.shape[1:]), chunks=True)
            return
        dset = f[name]
        if dset.shape[1:] != array.shape[1:]:
            raise CaffeFormatError(f"rows of shape {array.shape[1:]} cannot be appended to "
                                   f"dataset '{name}' of {self.file_name}, whose rows are "
                                   f"{dset.shape[1:]}", layer=self.name)
        start = dset.shape[0]
        dset.resize(start + array.shape[0], axis=0)
        dset[start:] = array
