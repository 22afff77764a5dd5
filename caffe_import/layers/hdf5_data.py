"""HDF5Data: Caffe's ``HDF5DataLayer``, reading rows of HDF5 files when the net is built with
data (``CaffeNet(..., data=True)``), else a net input like the other data layers
(``caffe_import.layers.data``).

What Caffe does, and so this layer when it reads:

* ``hdf5_data_param.source`` is a text file listing HDF5 files (whitespace-separated, opened as
  written: relative to the working directory, as Caffe opens them);
* every top reads the dataset of the same name; a file's datasets share their first axis (the
  rows); each top is ``(batch_size, *dataset.shape[1:])``;
* a forward copies ``batch_size`` rows, going through the rows of one file, then the next file
  in the list, wrapping around to the first after the last;
* any numeric dataset (integers, float, double) is read as float32, as HDF5 converts it for
  Caffe's ``H5LTread_dataset_float``; ``transform_param`` is refused ("does not transform");
* ``shuffle: true`` shuffles the file order and the rows of each file (each pass again), in
  either phase, as Caffe does. Caffe shuffles with its own RNG (``std::random_shuffle``); the
  order here comes from numpy seeded with the ``seed`` of the net's ``data=`` setting where it
  has one (fresh randomness otherwise, as Caffe without ``random_seed``): reproducible with a
  seed, but never Caffe's order.

Where Caffe differs: Caffe opens only the first file at setup and dies on a bad later file
mid-training; here every listed file is opened at build (metadata only) so a missing or
corrupt file, a missing dataset or a row-shape mismatch is one ``CaffeFormatError`` naming
the layer and the file before the first iteration. Under several processes (DDP) rank ``r`` of
``n`` keeps every ``n``-th row in TRAIN, as Caffe's ``Skip`` does (``solver_rank``,
``solver_count``).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..errors import CaffeFormatError
from .base import Shape
from .data import DataInput, DataKind
from .registry import register


def read_source_list(source: str, layer: str) -> list[str]:
    """The HDF5 file names a ``source`` list file holds (whitespace-separated, as Caffe's
    ``>>`` reads them); an error naming the layer and the file when it is missing or empty."""
    path = Path(source)
    try:
        names = path.read_text().split()
    except OSError as exc:
        raise CaffeFormatError(f"HDF5Data cannot open its source list: "
                               f"{exc.strerror or exc}", path=source, layer=layer) from exc
    if not names:
        raise CaffeFormatError("the source list names no HDF5 file (Caffe needs at least 1)",
                               path=source, layer=layer)
    return names


def _probe(file_name: str, tops: Sequence[str], layer: str) -> tuple[int, list[Shape]]:
    """``(rows, per-top row shape)`` of one HDF5 file, from its metadata."""
    import h5py  # lazy: h5py loads only for nets that read HDF5 files

    try:
        with h5py.File(file_name, "r") as f:
            shapes = []
            for top in tops:
                dset = f.get(top)
                if not isinstance(dset, h5py.Dataset):
                    raise CaffeFormatError(f"no dataset '{top}' (one per top, named like it)",
                                           path=file_name, layer=layer)
                if dset.dtype.kind not in "biuf" or dset.ndim < 1:
                    raise CaffeFormatError(f"dataset '{top}' is {dset.dtype} with shape "
                                           f"{dset.shape}; expected a numeric array of at least "
                                           f"1 axis", path=file_name, layer=layer)
                shapes.append(tuple(int(d) for d in dset.shape))
    except CaffeFormatError:
        raise
    except (OSError, ValueError) as exc:  # missing, truncated or not HDF5
        raise CaffeFormatError(f"HDF5Data cannot read this file: {exc}", path=file_name,
                               layer=layer) from exc
    rows = {s[0] for s in shapes}
    if len(rows) != 1:
        raise CaffeFormatError(f"the datasets {list(tops)} have different numbers of rows "
                               f"{[s[0] for s in shapes]}", path=file_name, layer=layer)
    return rows.pop(), [s[1:] for s in shapes]


def _load(file_name: str, tops: Sequence[str]) -> list[np.ndarray]:
    import h5py  # lazy: h5py loads only for nets that read HDF5 files

    with h5py.File(file_name, "r") as f:
        return [np.ascontiguousarray(f[top][()], dtype=np.float32) for top in tops]


@register("HDF5Data")
class HDF5Data(DataInput):
    """Caffe's HDF5 data layer (see the module docstring): a net input until
    :meth:`open_source` (called by the net builder with ``data=True``) makes it read."""

    kind = DataKind("hdf5_data_param", color_channels=False, label=None)

    def __init__(self, param, bottom_shapes: Sequence[Shape], phase: str = "test") -> None:
        super().__init__(param, bottom_shapes, phase)
        self.batch_size = int(param.hdf5_data_param.batch_size)
        self.shuffle = bool(param.hdf5_data_param.shuffle)
        self.seed: int | None = None
        self.solver_rank, self.solver_count = 0, 1
        self.files: list[str] = []
        self.row_shapes: list[Shape] = []
        self.register_buffer("_probe", torch.empty(0), persistent=False)  # follows .to()

    # ---- reading ------------------------------------------------------------------
    def open_source(self, reading: Any = True) -> None:
        """Read the source list and check every file it names; from now on the layer reads
        (it is no longer a net input). ``reading``: the net's ``data=`` setting (its ``seed``,
        if it has one, seeds the shuffles)."""
        self.seed = getattr(reading, "seed", None)
        p = self.param
        if p.HasField("transform_param"):
            raise CaffeFormatError("HDF5Data does not transform data (Caffe refuses "
                                   "transform_param)", layer=self.name)
        if self.batch_size <= 0:
            raise CaffeFormatError("hdf5_data_param needs batch_size > 0", layer=self.name)
        tops = list(p.top)
        if not tops:
            raise CaffeFormatError("HDF5Data needs at least one top", layer=self.name)
        self.files = read_source_list(p.hdf5_data_param.source, self.name)
        self.rows = []
        for i, name in enumerate(self.files):
            rows, shapes = _probe(name, tops, self.name)
            if i and shapes != self.row_shapes:
                raise CaffeFormatError(f"rows of shapes {shapes} differ from the first file's "
                                       f"{self.row_shapes} ({self.files[0]})", path=name,
                                       layer=self.name)
            self.rows.append(rows)
            self.row_shapes = shapes
        self.feeds_net = False
        self._rng = np.random.default_rng(self.seed)
        self.file_order = list(range(len(self.files)))
        if self.shuffle:
            self._rng.shuffle(self.file_order)
        self.current_file, self.offset = 0, 0
        self._load_current()

    def _load_current(self) -> None:
        name = self.files[self.file_order[self.current_file]]
        self.arrays = _load(name, list(self.param.top))
        self.row_order = np.arange(self.arrays[0].shape[0])
        if self.shuffle:
            self._rng.shuffle(self.row_order)
        self.current_row = 0

    def _next(self) -> None:
        """Caffe's ``Next``: the next row, the next file (wrapping around) after the last."""
        self.current_row += 1
        if self.current_row == self.arrays[0].shape[0]:
            if len(self.files) > 1:
                self.current_file += 1
                if self.current_file == len(self.files):
                    self.current_file = 0
                    if self.shuffle:
                        self._rng.shuffle(self.file_order)
                self._load_current()
            self.current_row = 0
            if self.shuffle:
                self._rng.shuffle(self.row_order)
        self.offset += 1

    def _skip(self) -> bool:
        return (self.phase == "train" and self.solver_count > 1
                and self.offset % self.solver_count != self.solver_rank)

    def top_shapes(self, bottom_shapes: Sequence[Shape]) -> list[Shape]:
        if getattr(self, "feeds_net", True) and not self.files:
            return super().top_shapes(bottom_shapes)
        return [(self.batch_size, *s) for s in self.row_shapes]

    def forward(self, *bottoms: torch.Tensor) -> tuple[torch.Tensor, ...]:
        if not self.files:
            return super().forward(*bottoms)
        batch = [np.empty((self.batch_size, *s), np.float32) for s in self.row_shapes]
        for i in range(self.batch_size):
            while self._skip():
                self._next()
            row = self.row_order[self.current_row]
            for out, array in zip(batch, self.arrays):
                out[i] = array[row]
            self._next()
        device = self._probe.device
        return tuple(torch.from_numpy(b).to(device) for b in batch)

