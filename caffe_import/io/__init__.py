"""Caffe's files: nets, weights, means and solvers in, weights out.

    read_net(path_or_text)      -> caffe_pb2.NetParameter (current form, upgraded)
    read_solver(path_or_text)   -> caffe_pb2.SolverParameter (upgraded)
    read_weights(path)          -> OrderedDict layer name -> [float32 arrays] (binary or HDF5)
    read_weights_net(path)      -> NetParameter: a caffemodel's layer structure, no blob data
    read_mean(path)             -> float32 array of a .binaryproto mean
    write_weights(path, net, weights), write_weights_h5(path, net, weights)
    detect(path)                -> the kind of file, judged by content
    match_blob_shape(array, expected_shape, ...) -> Caffe's load-time shape rule
"""
from __future__ import annotations

import os
from collections import OrderedDict

import numpy as np

from ..errors import CaffeFormatError
from ..proto.schema import Schema, resolve_schema
from .binary import read_weights_binary, read_weights_net
from .detect import detect
from .hdf5 import read_weights_h5
from .mean import read_mean as _read_mean
from .shapes import match_blob_shape
from .text import read_net, read_solver
from .writer import write_weights as _write_weights
from .writer import write_weights_h5 as _write_weights_h5

__all__ = ["read_net", "read_solver", "read_weights", "read_weights_net", "read_mean",
           "write_weights", "write_weights_h5", "detect", "match_blob_shape"]

_WRONG_KIND = {
    "prototxt": "a prototxt (text), not weights: read it with read_net / read_solver",
    "binaryproto": "a BlobProto (e.g. a mean .binaryproto), not weights: read it with read_mean",
    "blobprotovector": "a BlobProtoVector, not weights",
    "solverstate": "a solver state (.solverstate), not weights",
}


def read_weights(path: str | os.PathLike, *, copy: bool = False, fork: str | None = None,
                 proto: str | os.PathLike | None = None, schema: Schema | None = None
                 ) -> "OrderedDict[str, list[np.ndarray]]":
    """Layer name -> param blobs (float32, C-contiguous, Caffe blob order) of a weights file.

    Binary caffemodels (current, V1 and V0 layouts) and HDF5 ``.caffemodel.h5`` are told
    apart by content, as Caffe's ``CopyTrainedLayersFrom`` does. Shapes are as stored: the
    ``BlobShape`` dims, or the legacy 4-D ``(num, channels, height, width)`` (see
    :func:`match_blob_shape` for how Caffe matches those to a layer). Layers without blobs
    are left out.

    ``fork``/``proto``/``schema`` (see :mod:`caffe_import.proto.schema`) change nothing for the blobs:
    every Caffe fork keeps BVLC's ``name`` and ``blobs`` numbers (a schema that does not is
    refused).

    Binary blobs are, by default, writable copy-on-write views of a memory map of the file
    (fast, and memory is spent only on what is used); ``copy=True`` gives independent,
    aligned arrays. See :func:`caffe_import.io.binary.read_weights_binary`. HDF5 weights
    are always read into new arrays.
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise FileNotFoundError(f"no such weights file: {path}")
    schema = resolve_schema(schema, fork, proto)
    if schema is not None:
        _check_blob_numbers(path, schema)
    kind = detect(path)
    if kind == "hdf5":
        return read_weights_h5(path)
    if kind in _WRONG_KIND:
        raise CaffeFormatError(f"this file is {_WRONG_KIND[kind]}", path=path)
    return read_weights_binary(path, copy=copy)


def _check_blob_numbers(path: str, schema: Schema) -> None:
    """Weights are found by layer ``name`` and ``blobs`` (fields 1 and 7 of a layer, 4 and 6
    of a V1 layer) in BVLC and every fork: a schema numbering them otherwise is refused."""
    for message, expected in (("LayerParameter", {"name": 1, "blobs": 7}),
                              ("V1LayerParameter", {"name": 4, "blobs": 6})):
        desc = schema.message(message).DESCRIPTOR
        table = schema.pool_to_wire.get(desc.full_name, {})
        for field, number in expected.items():
            pool = desc.fields_by_name[field].number
            if table.get(pool, pool) != number:
                raise CaffeFormatError(f"schema {schema.name!r} numbers {message}.{field} "
                                       f"{table.get(pool, pool)}, not Caffe's {number}; "
                                       "weights in such a layout are not supported", path=path)


def read_mean(path: str | os.PathLike) -> np.ndarray:
    return _read_mean(path)


def write_weights(path, net_param, weights) -> None:
    return _write_weights(path, net_param, weights)


def write_weights_h5(path, net_param, weights) -> None:
    return _write_weights_h5(path, net_param, weights)
