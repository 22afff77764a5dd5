"""HDF5 weights (``.caffemodel.h5``), Caffe's ``Net::ToHDF5`` layout.

``/data/<layer name>/<i>``: one group per layer (also for layers without params), datasets
``"0"``, ``"1"``, ... holding each param blob with its N-D shape. Caffe loads them with
exact shape equality (no legacy 4-D tolerance) and lets HDF5 convert integer or double
datasets to float.
"""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from ..errors import CaffeFormatError


def layer_groups(group, prefix: str = ""):
    """(layer name, group) for every group holding datasets; a '/' in a layer name makes
    nested groups, which are walked."""
    import h5py

    for key in group:
        item = group.get(key, getlink=False)
        if isinstance(item, h5py.Group):
            name = prefix + key
            if any(isinstance(group[key].get(k, getlink=False), h5py.Dataset) for k in item):
                yield name, item
            yield from layer_groups(item, name + "/")


def _check_storage(dset, path: str, layer: str, file_size: int) -> None:
    """Refuse a dataset that claims more data than the file can back."""
    nbytes = int(np.prod(dset.shape, dtype=np.float64)) * dset.dtype.itemsize
    if nbytes == 0:
        return
    stored = dset.id.get_storage_size()
    compressed = dset.compression is not None or bool(dset.chunks and dset.scaleoffset)
    limit = stored * 1024 if compressed else stored
    if nbytes > limit or (not compressed and stored > file_size):
        raise CaffeFormatError(f"dataset '{dset.name}' claims shape {dset.shape} ({nbytes} "
                               f"bytes) but the file stores {stored} bytes for it",
                               path=path, layer=layer)


def open_h5(path: str | os.PathLike):
    """``h5py.File(path, "r")``; a file HDF5 cannot open is a ``CaffeFormatError`` naming it."""
    import h5py

    try:
        return h5py.File(path, "r")
    except OSError as exc:
        raise CaffeFormatError(f"not a readable HDF5 file: {exc}", path=os.fspath(path)) from None


def read_weights_h5(path: str | os.PathLike) -> "OrderedDict[str, list[np.ndarray]]":
    """Layer name -> float32 param blobs of an HDF5 caffemodel.

    Layers come in the file's link order (HDF5 name order, as Caffe's loader iterates them:
    Caffe does not track creation order); layers without datasets are left out.
    """
    import h5py

    path = os.fspath(path)
    file_size = os.path.getsize(path)
    f = open_h5(path)
    out: "OrderedDict[str, list[np.ndarray]]" = OrderedDict()
    with f:
        if "data" not in f or not isinstance(f["data"], h5py.Group):
            raise CaffeFormatError("HDF5 file has no '/data' group: not a Caffe .caffemodel.h5",
                                   path=path)
        layer = None
        try:
            for layer, group in layer_groups(f["data"]):
                keys = [k for k in group if isinstance(group.get(k, getlink=False), h5py.Dataset)]
                try:
                    indices = sorted(int(k) for k in keys)
                except ValueError:
                    raise CaffeFormatError(f"datasets must be named 0, 1, ...; found {keys}",
                                           path=path, layer=layer) from None
                if indices != list(range(len(indices))) or any(str(i) not in group
                                                               for i in indices):
                    raise CaffeFormatError(f"datasets must be named 0 .. {len(keys) - 1}; found "
                                           f"{sorted(keys)}", path=path, layer=layer)
                blobs = []
                for i in indices:
                    dset = group[str(i)]
                    if dset.dtype.kind not in "fiu":
                        raise CaffeFormatError(f"dataset {i} has dtype {dset.dtype}, not numeric",
                                               path=path, layer=layer)
                    _check_storage(dset, path, layer, file_size)
                    array = np.empty(dset.shape, dtype=np.float32)
                    if array.size:
                        dset.read_direct(array) if dset.dtype == np.float32 else \
                            np.copyto(array, dset[()], casting="unsafe")
                    blobs.append(array)
                out[layer] = blobs
        except CaffeFormatError:
            raise
        except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
            raise CaffeFormatError(f"corrupt HDF5 weights: {exc}", path=path,
                                   layer=layer) from None
    return out
