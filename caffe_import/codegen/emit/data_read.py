"""Data and ImageData in a net built with ``data=True``: their tops are ``forward``'s
arguments (the module does not read LMDB, LevelDB or image files; the caller feeds batches),
the same module as for the net built without data."""
from __future__ import annotations

from ...layers.data_read import DataLayer, ImageDataLayer
from .base import emits
from .hdf5_data import emit_read_tops

emits(DataLayer, ImageDataLayer)(emit_read_tops)
