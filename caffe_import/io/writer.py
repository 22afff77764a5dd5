"""Writing weights as Caffe writes them: binary caffemodels and ``.caffemodel.h5``.

The binary writer emits the protobuf wire format itself: layer and net fields go through
the protobuf library (they are small), while each blob's values are written as one packed
float32 run straight from the array's memory. A 540 MB model therefore never becomes a
protobuf repeated field or a Python list. The bytes are the ones protobuf's own serializer
would produce (fields in number order, ``data`` packed, then ``shape``), as Caffe's
``Blob<float>::ToProto`` writes them: ``BlobShape`` dims and float ``data``, never the
legacy num/channels/height/width.
"""
from __future__ import annotations

import os
from typing import Any, Mapping, Optional, Sequence

import numpy as np
from google.protobuf import text_format

from ..errors import CaffeFormatError
from ..proto import caffe_pb2
from ..proto.schema import forks_fitting, get_schema, message_class, schema_of
from ..proto.transcode import AmbiguousNumber
from ..proto import wire
from .atomic import atomic_open, atomic_path
from .upgrade import upgrade_net

_NET_LAYER = 100
_LAYER_BLOBS = 7
_BLOB_DATA, _BLOB_SHAPE = 5, 7


def _as_float32(value: Any, layer: str, index: int) -> np.ndarray:
    if hasattr(value, "detach"):  # a torch tensor or Parameter, on any device
        value = value.detach().cpu().numpy()
    array = np.asarray(value)
    if array.dtype.kind not in "fiub":
        raise CaffeFormatError(f"param blob {index} has dtype {array.dtype}; Caffe stores floats",
                               layer=layer)
    # not ascontiguousarray: it turns a 0-axis blob (PReLU channel_shared) into shape (1,)
    return np.asarray(array, dtype="<f4", order="C")


def _blob_bytes_header(array: np.ndarray) -> tuple[bytes, bytes]:
    """(bytes before the float payload, bytes after it) of one BlobProto."""
    data_len = array.nbytes
    head = wire.tag(_BLOB_DATA, wire.LENGTH) + wire.encode_varint(data_len) if data_len else b""
    dims = b"".join(wire.encode_varint(int(d)) for d in array.shape)
    if array.ndim == 0:  # Caffe writes no BlobShape at all for a 0-axis blob
        return head, b""
    shape = wire.tag(1, wire.LENGTH) + wire.encode_varint(len(dims)) + dims
    tail = wire.tag(_BLOB_SHAPE, wire.LENGTH) + wire.encode_varint(len(shape)) + shape
    return head, tail


def _split_at(serialized: bytes, number: int) -> tuple[bytes, bytes]:
    """Split a serialized message before its first field numbered above ``number``.

    protobuf serializes known fields in number order, so the blobs (field 7 of a layer)
    go between the two halves exactly where protobuf itself would put them.
    """
    pos = 0
    while pos < len(serialized):
        tag, after = wire.read_varint(serialized, pos, len(serialized))
        if tag >> 3 > number:
            return serialized[:pos], serialized[pos:]
        pos = wire.skip_field(serialized, after, len(serialized), tag & 7, tag >> 3)
    return serialized, b""


def _layers_to_write(net_param: Optional[caffe_pb2.NetParameter],
                     weights: Mapping[str, Sequence[Any]]) -> tuple[Optional[str], list[Any]]:
    if net_param is None:
        return None, [caffe_pb2.LayerParameter(name=name) for name in weights]
    layer_cls = message_class(net_param, "LayerParameter")
    if len(net_param.layers) or len(net_param.input):
        upgraded = type(net_param)()
        upgraded.CopyFrom(net_param)
        net_param = upgrade_net(upgraded)
    layers = []
    seen = set()
    for layer in net_param.layer:
        copy = layer_cls()
        copy.CopyFrom(layer)
        copy.ClearField("blobs")
        layers.append(copy)
        seen.add(layer.name)
    # weights of layers the net does not have are kept, under their name only
    layers += [layer_cls(name=name) for name in weights if name not in seen]
    return (net_param.name if net_param.HasField("name") else None), layers


def _encode_layers(layers: Sequence[Any], schema: Any) -> list[tuple[str, bytes]]:
    """Each layer's name and its bytes on the wire under ``schema`` (None: as serialized)."""
    encoded = []
    for layer in layers:
        data = layer.SerializeToString()
        if schema is not None:
            data = schema.to_wire(data, "LayerParameter", layer=layer.name or None)
        encoded.append((layer.name, data))
    return encoded


def _in_schema(layers: Sequence[Any], schema: Any) -> list[Any]:
    """The layers as messages of ``schema``, carried over field by field by name."""
    moved = []
    for layer in layers:
        copy = schema.LayerParameter()
        text_format.Parse(text_format.MessageToString(layer), copy)
        moved.append(copy)
    return moved


def _encode_as_the_fork(exc: AmbiguousNumber, net_param: Any, layers: Sequence[Any],
                        schema: Any) -> list[tuple[str, bytes]]:
    """A field numbered differently by the merged forks: the net is written with the
    numbering of the fork its fields belong to. Where several forks have all its fields
    (SegNet's two), they must number them alike; else the fork has to be named."""
    fits = forks_fitting(net_param, schema.forks)
    encodings = [_encode_layers(_in_schema(layers, get_schema(fork)), get_schema(fork))
                 for fork in fits]
    if encodings and all(e == encodings[0] for e in encodings):
        return encodings[0]
    advice = (f"the net's fields fit forks {', '.join(fits)}, which number them differently"
              if len(fits) > 1 else "no one fork has all the net's fields")
    raise CaffeFormatError(f"{exc.detail}; {advice}: name the fork (fork=NAME / --fork NAME) "
                           "to write it", layer=exc.layer) from None


def write_weights(path: str | os.PathLike, net_param: Optional[caffe_pb2.NetParameter],
                  weights: Mapping[str, Sequence[Any]]) -> None:
    """Write a binary caffemodel Caffe reads: a NetParameter in the current layout.

    Layers (name, type, bottoms/tops and settings) are copied from ``net`` when given, as
    Caffe's ``Net::ToProto`` does, each with its blobs from ``weights`` (arrays or tensors,
    written as float32 with a ``BlobShape``). Without ``net`` each weighted layer is written
    with its name only, which is all Caffe's loader matches on. Atomic: temp file + rename.

    With the net Caffe wrote a file from (the file's own layer list, ``read_weights_net``)
    the bytes are Caffe's. ``Net::ToProto`` writes the net after ``InsertSplits``: a net
    read from its prototxt has no Split layers where a blob has several readers, so its
    file holds the same layers, fields and param bytes less those Split layers, readers'
    bottoms named as in the prototxt; Caffe loads both to the same weights.

    A net read with a Caffe fork's schema is written with that fork's field numbers (see
    :mod:`caffe_import.proto.schema`): the file is what the fork's own Caffe writes. With
    the default mixed schema, BVLC's own fields keep BVLC's numbers, and a field whose
    number differs between forks is written with the numbers of the fork the net's fields
    belong to (an SSD net's, SSD's); when they fit several forks that number them
    differently, it is refused (name the fork).
    """
    schema = schema_of(net_param) if net_param is not None else None
    name, layers = _layers_to_write(net_param, weights)
    arrays = {lname: [_as_float32(v, lname, i) for i, v in enumerate(blobs)]
              for lname, blobs in weights.items()}
    head_msg = caffe_pb2.NetParameter()
    if name is not None:
        head_msg.name = name
    try:
        encoded = _encode_layers(layers, schema)
    except AmbiguousNumber as exc:
        encoded = _encode_as_the_fork(exc, net_param, layers, schema)
    with atomic_open(path) as fh:
        fh.write(head_msg.SerializeToString())
        for lname, data in encoded:
            before, after = _split_at(data, _LAYER_BLOBS)
            blob_parts = []
            for array in arrays.get(lname, []) if lname else []:
                head, tail = _blob_bytes_header(array)
                size = len(head) + array.nbytes + len(tail)
                blob_parts.append((wire.tag(_LAYER_BLOBS, wire.LENGTH) + wire.encode_varint(size)
                                   + head, array, tail))
            body = len(before) + len(after) + sum(len(h) + a.nbytes + len(t)
                                                  for h, a, t in blob_parts)
            fh.write(wire.tag(_NET_LAYER, wire.LENGTH) + wire.encode_varint(body) + before)
            for head, array, tail in blob_parts:
                fh.write(head)
                if array.nbytes:
                    fh.write(memoryview(array.reshape(-1)).cast("B"))
                fh.write(tail)
            fh.write(after)


def write_weights_h5(path: str | os.PathLike, net_param: Optional[caffe_pb2.NetParameter],
                     weights: Mapping[str, Sequence[Any]]) -> None:
    """Write Caffe's HDF5 weights layout: ``/data/<layer>/<i>`` float32 datasets.

    As ``Net::ToHDF5`` does, a group is made for every layer of ``net`` (also those without
    params), in net order; weights of layers not in ``net`` get groups too. Atomic.
    """
    import h5py  # lazy: slow to import, and only HDF5 weights need it

    names = []
    if net_param is not None:
        _, layers = _layers_to_write(net_param, weights)
        names = [l.name for l in layers]
    names += [n for n in weights if n not in set(names)]
    with atomic_path(path) as tmp:
        with h5py.File(tmp, "w") as f:
            data = f.create_group("data")
            for lname in names:
                group = data.require_group(lname)
                for i, value in enumerate(weights.get(lname, [])):
                    group.create_dataset(str(i), data=_as_float32(value, lname, i))
