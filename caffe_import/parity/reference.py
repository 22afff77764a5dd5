"""The stored-activation file format: read it, write it.

The format is ``docs/stored_activations_format.md``: an HDF5 file with ``/inputs/<blob>``,
``/blobs/<blob>``, optionally ``/params/<layer>/<i>``, and for TRAIN references
``/diffs/<layer>/<i>`` (param gradients) and ``/blob_diffs/<blob>`` (blob gradients); names are
percent-encoded with ``urllib.parse.quote(name, safe='')``; attrs ``caffe`` and ``phase``.
"""
from __future__ import annotations

import os
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote, unquote

import h5py
import numpy as np

from ..errors import CaffeFormatError
from ..io.atomic import atomic_path
from ..io.hdf5 import open_h5


@dataclass
class StoredActivations:
    """The content of a stored-activation file, names decoded.

    ``params`` and ``diffs`` map a layer name to its blobs by index (``{i: array}``), so a file
    that stores only some of a layer's blobs still reads.
    """

    inputs: "OrderedDict[str, np.ndarray]" = field(default_factory=OrderedDict)
    blobs: "OrderedDict[str, np.ndarray]" = field(default_factory=OrderedDict)
    params: "OrderedDict[str, dict[int, np.ndarray]]" = field(default_factory=OrderedDict)
    diffs: "OrderedDict[str, dict[int, np.ndarray]]" = field(default_factory=OrderedDict)
    blob_diffs: "OrderedDict[str, np.ndarray]" = field(default_factory=OrderedDict)
    attrs: dict[str, Any] = field(default_factory=dict)

    @property
    def phase(self) -> str:
        """``"train"`` when the file says TRAIN or holds gradients, else ``"test"``."""
        stored = str(self.attrs.get("phase", "")).strip().upper()
        if stored == "TRAIN" or self.diffs or self.blob_diffs:
            return "train"
        return "test"


def _read_array(ds, path: Path, where: str) -> np.ndarray:
    if not isinstance(ds, h5py.Dataset):
        raise CaffeFormatError(f"'{where}' is a group, expected an array", path=path)
    if ds.dtype.kind not in "fiub":
        raise CaffeFormatError(f"'{where}' holds {ds.dtype}, expected numbers", path=path)
    return np.array(ds[()], dtype=np.float32, order="C")  # not ascontiguousarray: keeps 0-d


def _read_flat(group, path: Path, prefix: str) -> "OrderedDict[str, np.ndarray]":
    return OrderedDict((unquote(k), _read_array(group[k], path, f"{prefix}/{k}")) for k in group)


def _read_nested(group, path: Path, prefix: str) -> "OrderedDict[str, dict[int, np.ndarray]]":
    out: OrderedDict[str, dict[int, np.ndarray]] = OrderedDict()
    for layer_key in group:
        sub = group[layer_key]
        if not isinstance(sub, h5py.Group):
            raise CaffeFormatError(f"'{prefix}/{layer_key}' should be a group of blobs 0, 1, ...",
                                   path=path)
        blobs: dict[int, np.ndarray] = {}
        for k in sub:
            if not k.isdigit():
                raise CaffeFormatError(f"'{prefix}/{layer_key}/{k}': blob names are indices",
                                       path=path)
            blobs[int(k)] = _read_array(sub[k], path, f"{prefix}/{layer_key}/{k}")
        out[unquote(layer_key)] = dict(sorted(blobs.items()))
    return out


def read_reference(path: str | os.PathLike) -> StoredActivations:
    """Read a stored-activation file (``reference.h5``).

    Raises ``CaffeFormatError`` for a file that is not HDF5 or has no ``/blobs``.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no such reference file: {path}")
    with open_h5(path) as f:
        if "blobs" not in f:
            raise CaffeFormatError("no /blobs group: not a stored-activation file", path=path)
        ref = StoredActivations()
        ref.attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        for name in FLAT_GROUPS:
            if name in f:
                setattr(ref, name, _read_flat(f[name], path, name))
        for name in NESTED_GROUPS:
            if name in f:
                setattr(ref, name, _read_nested(f[name], path, name))
    return ref


#: the groups of a stored-activation file: flat ones (blob -> array), nested ones
#: (layer -> index -> array)
FLAT_GROUPS = ("inputs", "blobs", "blob_diffs")
NESTED_GROUPS = ("params", "diffs")


def is_reference(f: h5py.File) -> bool:
    """Whether an open HDF5 file is a stored-activation file (it has ``/blobs``)."""
    return isinstance(f.get("blobs"), h5py.Group)


def reference_shapes(path: str | os.PathLike) -> dict[str, Any]:
    """What a stored-activation file holds, without reading its arrays: ``attrs`` (``caffe``:
    what wrote it, ``phase``), ``phase`` (as :attr:`StoredActivations.phase` tells it), and per
    group present (``inputs``, ``blobs``, ``blob_diffs``: ``{blob: shape}``; ``params``,
    ``diffs``: ``{layer: [shape per index]}``), names decoded. Raises ``CaffeFormatError``
    for a file with no ``/blobs``."""
    path = Path(path)
    with open_h5(path) as f:
        if not is_reference(f):
            raise CaffeFormatError("no /blobs group: not a stored-activation file", path=path)
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in f.attrs.items()}
        out: dict[str, Any] = {"attrs": attrs}
        for name in FLAT_GROUPS:
            if name in f:
                out[name] = {unquote(k): list(f[name][k].shape) for k in f[name]}
        for name in NESTED_GROUPS:
            if name in f:
                out[name] = {unquote(layer): [list(group[k].shape) for k in
                                              sorted((k for k in group if k.isdigit()), key=int)]
                             for layer, group in f[name].items()}
    grads = out.get("diffs") or out.get("blob_diffs")
    out["phase"] = "train" if grads or str(attrs.get("phase", "")).upper() == "TRAIN" else "test"
    return out


def write_reference(path: str | os.PathLike, ref: StoredActivations) -> None:
    """Write ``ref`` in the stored-activation format, atomically (temp file + ``os.replace``)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            for key, value in ref.attrs.items():
                f.attrs[key] = value
            for name in ("inputs", "blobs", "blob_diffs"):
                arrays = getattr(ref, name)
                if arrays or name == "blobs":
                    group = f.create_group(name)
                    for blob, arr in arrays.items():
                        group.create_dataset(quote(blob, safe=""),
                                             data=np.asarray(arr, dtype=np.float32))
            for name in ("params", "diffs"):
                nested = getattr(ref, name)
                if nested:
                    group = f.create_group(name)
                    for layer, blobs in nested.items():
                        sub = group.create_group(quote(layer, safe=""))
                        for i, arr in blobs.items():
                            sub.create_dataset(str(i), data=np.asarray(arr, dtype=np.float32))
