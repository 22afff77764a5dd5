"""Binary caffemodels (a serialized ``NetParameter``), decoded at the wire level.

``ParseFromString`` on a 540 MB VGG16 model builds protobuf repeated fields of Python-visible
floats and costs several times the file size in memory. Here the file is memory-mapped, only
the message framing (tags and lengths) is walked, and each blob's packed float payload is
read straight into its own float32 array: no Python float lists, one copy of the data.

Layouts accepted, as Caffe's ``ReadNetParamsFromBinaryFileOrDie`` + upgrade accepts them:

* current: ``NetParameter.layer`` (field 100) -> ``LayerParameter`` name=1, blobs=7;
* V1: ``NetParameter.layers`` (field 2) -> ``V1LayerParameter`` name=4, blobs=6;
* V0: V1 entries wrapping a ``V0LayerParameter`` (field 1) with name=1, blobs=50. When any
  entry is V0, Caffe rebuilds every layer from its V0 part, so entries without one lose
  their name and blobs, as here.

A ``BlobProto``'s values come from ``double_data`` (field 8) when it is non-empty (converted
to float32, as ``Blob<float>::FromProto`` does), else from ``data`` (field 5); packed and
unpacked encodings are both legal. Its shape is the legacy 4-D ``(num, channels, height,
width)`` when any of those fields is present, else ``shape.dim``; the element count must
equal the number of values (Caffe CHECKs the same).
"""
from __future__ import annotations

import math
import mmap
import os
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Optional

import numpy as np

from ..errors import CaffeFormatError
from ..proto import wire
from ..proto.schema import Schema, get_schema, resolve_schema
from ..proto.wire import FIXED32, FIXED64, LENGTH, VARINT, WireError
from .upgrade import upgrade_net

MAX_BLOB_AXES = 32  # Caffe's kMaxBlobAxes

# (layer field in NetParameter, name field, blobs field) per layout
_NET_NAME, _NET_LAYERS_V1, _NET_LAYER = 1, 2, 100
_V2_NAME, _V2_BLOBS = 1, 7
_V1_NAME, _V1_BLOBS, _V1_V0 = 4, 6, 1
_V0_NAME, _V0_BLOBS = 1, 50
# BlobProto fields
_B_NUM, _B_CHANNELS, _B_HEIGHT, _B_WIDTH = 1, 2, 3, 4
_B_DATA, _B_DIFF, _B_SHAPE, _B_DOUBLE, _B_DOUBLE_DIFF = 5, 6, 7, 8, 9
_LEGACY = {_B_NUM: 0, _B_CHANNELS: 1, _B_HEIGHT: 2, _B_WIDTH: 3}


@dataclass
class BlobRef:
    """Where a blob's values lie in the file, and its shape (nothing read yet)."""

    shape: tuple[int, ...]
    legacy: bool
    itemsize: int  # 4: float ``data``; 8: ``double_data``
    runs: list[tuple[int, int]] = field(default_factory=list)  # (offset, count) packed runs
    strided: list[tuple[int, int]] = field(default_factory=list)  # unpacked: (first value, count)

    @property
    def count(self) -> int:
        return sum(n for _, n in self.runs) + sum(n for _, n in self.strided)


@dataclass
class LayerRef:
    name: str
    blobs: list[BlobRef]
    start: int  # the layer message's bytes, for read_weights_net
    end: int
    layout: str  # "layer" (current), "layers" (V1) or "v0"


@dataclass
class ScannedModel:
    path: str
    size: int
    layout: str  # "current", "V1", "V0" or "empty"
    layers: list[LayerRef]


def _unpacked_run(buf: mmap.mmap, pos: int, end: int, tag_byte: int, size: int) -> int:
    """Number of consecutive unpacked values starting at the tag byte at ``pos``.

    An unpacked repeated float is ``tag value tag value ...``; numpy checks the tag bytes at a
    fixed stride in one pass instead of a Python loop per value.
    """
    stride = 1 + size
    n_max = (end - pos) // stride
    if n_max <= 1:
        return n_max
    region = np.frombuffer(buf, dtype=np.uint8, count=n_max * stride, offset=pos)
    tags = region[::stride]
    bad = np.flatnonzero(tags != tag_byte)
    return int(bad[0]) if bad.size else n_max


def _read_values(buf: mmap.mmap, ref: BlobRef, tag_pos: int, pos: int, end: int, wt: int,
                 size: int, fixed: int) -> int:
    """Note where a run of float (``size`` 4) or double (8) values lies, packed or one tag
    per value; returns the position after it."""
    if wt == LENGTH:
        length, pos = wire.read_varint(buf, pos, end)
        if pos + length > end:
            raise WireError("packed values run past the end of the blob", tag_pos)
        if length % size:
            raise WireError(f"packed values of {length} bytes are not a whole number "
                            f"of {size}-byte values", tag_pos)
        ref.runs.append((pos, length // size))
        return pos + length
    if wt == fixed:
        if pos != tag_pos + 1:  # multi-byte tag cannot occur for fields 5/8
            raise WireError("unexpected tag encoding", tag_pos)
        n = _unpacked_run(buf, tag_pos, end, buf[tag_pos], size)
        if n == 0:
            raise WireError("truncated value", tag_pos)
        ref.strided.append((tag_pos + 1, n))
        return tag_pos + n * (1 + size)
    raise WireError(f"blob field {5 if size == 4 else 8} has wire type {wt}", tag_pos)


def _read_shape(buf: mmap.mmap, tag_pos: int, pos: int, end: int) -> tuple[list[int], int]:
    """A ``BlobShape``'s dims (packed or not, at most ``MAX_BLOB_AXES``) and the position
    after it."""
    length, pos = wire.read_varint(buf, pos, end)
    if pos + length > end:
        raise WireError("blob shape runs past the end of the blob", tag_pos)
    dims: list[int] = []
    for f in wire.iter_fields(buf, pos, pos + length):
        if f.number != 1:
            continue
        if f.wire_type == VARINT:
            dims.append(wire.as_int32(f.value))
        elif f.wire_type == LENGTH:
            p = f.start
            while p < f.end and len(dims) <= MAX_BLOB_AXES:
                v, p = wire.read_varint(buf, p, f.end)
                dims.append(wire.as_int32(v))
        else:
            raise WireError(f"shape dim has wire type {f.wire_type}", f.start)
        if len(dims) > MAX_BLOB_AXES:
            raise WireError(f"blob shape has more than {MAX_BLOB_AXES} axes", tag_pos)
    return dims, pos + length


def _parse_blob(buf: mmap.mmap, start: int, end: int) -> BlobRef:
    legacy = [0, 0, 0, 0]
    has_legacy = False
    dims: list[int] = []
    floats = BlobRef((), False, 4)
    doubles = BlobRef((), False, 8)
    pos = start
    while pos < end:
        tag_pos = pos
        tag, pos = wire.read_varint(buf, pos, end)
        number, wt = tag >> 3, tag & 7
        if number == _B_DATA:
            pos = _read_values(buf, floats, tag_pos, pos, end, wt, 4, FIXED32)
        elif number == _B_DOUBLE:
            pos = _read_values(buf, doubles, tag_pos, pos, end, wt, 8, FIXED64)
        elif number in _LEGACY:
            if wt != VARINT:
                raise WireError(f"blob field {number} has wire type {wt}", tag_pos)
            value, pos = wire.read_varint(buf, pos, end)
            legacy[_LEGACY[number]] = wire.as_int32(value)
            has_legacy = True
        elif number == _B_SHAPE:
            if wt != LENGTH:
                raise WireError(f"blob shape has wire type {wt}", tag_pos)
            dims, pos = _read_shape(buf, tag_pos, pos, end)  # a later shape replaces it
        else:
            pos = wire.skip_field(buf, pos, end, wt, number)
    ref = doubles if doubles.count else floats
    ref.legacy = has_legacy
    ref.shape = tuple(legacy) if has_legacy else tuple(dims)
    return ref


def _check_shape(ref: BlobRef) -> None:
    for d in ref.shape:
        if d < 0:
            raise ValueError(f"blob shape {ref.shape} has a negative dimension")
    n = math.prod(ref.shape)
    if n != ref.count:
        kind = "legacy (num, channels, height, width)" if ref.legacy else "shape"
        raise ValueError(f"blob {kind} {ref.shape} holds {n} values but the blob stores "
                         f"{ref.count} {'double_data' if ref.itemsize == 8 else 'data'} values")


def _layer_fields(buf, start: int, end: int, name_no: int, blobs_no: int):
    name: Optional[str] = None
    blobs: list[BlobRef] = []
    v0: Optional[tuple[int, int]] = None
    for f in wire.iter_fields(buf, start, end):
        if f.number == name_no:
            if f.wire_type != LENGTH:
                raise WireError(f"layer name has wire type {f.wire_type}", f.start)
            try:
                name = bytes(buf[f.start:f.end]).decode("utf-8")
            except UnicodeDecodeError:
                raise WireError("layer name is not UTF-8", f.start) from None
        elif f.number == blobs_no:
            if f.wire_type != LENGTH:
                raise WireError(f"layer blobs have wire type {f.wire_type}", f.start)
            try:
                blobs.append(_parse_blob(buf, f.start, f.end))
            except WireError as exc:
                exc.layer = name  # the name field precedes the blobs in every writer
                exc.args = (f"blob {len(blobs)}: {exc.args[0]}",)
                raise
        elif name_no == _V1_NAME and f.number == _V1_V0:
            if f.wire_type != LENGTH:
                raise WireError(f"V0 layer has wire type {f.wire_type}", f.start)
            v0 = (f.start, f.end)
    return name, blobs, v0


def _cut_layer_name(buf, offset: int) -> Optional[str]:
    """The name of the layer whose entry starts at ``offset`` and runs past the end of the
    file (a truncated caffemodel), read from the bytes that remain; None when ``offset``
    does not start a layer entry or its name is not among those bytes."""
    try:
        tag, pos = wire.read_varint(buf, offset, len(buf))
        if tag & 7 != LENGTH or tag >> 3 not in (_NET_LAYER, _NET_LAYERS_V1):
            return None
        _, pos = wire.read_varint(buf, pos, len(buf))
        return _name_in_cut(buf, pos, _V2_NAME if tag >> 3 == _NET_LAYER else _V1_NAME)
    except (WireError, UnicodeDecodeError):
        return None


def _name_in_cut(buf, pos: int, name_no: int) -> Optional[str]:
    """The name field (``name_no``) among the fields from ``pos`` to the end of the file,
    looking into a V1 entry's V0 ``layer``, which may itself be cut."""
    end = len(buf)
    while pos < end:
        tag, pos = wire.read_varint(buf, pos, end)
        number, wire_type = tag >> 3, tag & 7
        if wire_type == LENGTH and number in (name_no, _V1_V0 if name_no == _V1_NAME else -1):
            length, pos = wire.read_varint(buf, pos, end)
            if number == name_no:
                return bytes(buf[pos:pos + length]).decode("utf-8") if pos + length <= end \
                    else None
            return _name_in_cut(buf, pos, _V0_NAME)
        pos = wire.skip_field(buf, pos, end, wire_type, number)
    return None


def scan(buf: mmap.mmap, path: str) -> ScannedModel:
    """Walk a caffemodel's framing: layer names and blob locations, no values read."""
    size = len(buf)
    current: list[LayerRef] = []
    v1: list[tuple[LayerRef, Optional[tuple[int, int]]]] = []
    layer_name: Optional[str] = None
    try:
        for f in wire.iter_fields(buf, 0, size):
            if f.number in (_NET_LAYER, _NET_LAYERS_V1):
                if f.wire_type != LENGTH:
                    raise WireError(f"net field {f.number} has wire type {f.wire_type}", f.start)
                layer_name = None
                if f.number == _NET_LAYER:
                    name, blobs, _ = _layer_fields(buf, f.start, f.end, _V2_NAME, _V2_BLOBS)
                    layer_name = name
                    current.append(LayerRef(name or "", blobs, f.start, f.end, "layer"))
                else:
                    name, blobs, v0 = _layer_fields(buf, f.start, f.end, _V1_NAME, _V1_BLOBS)
                    layer_name = name
                    v1.append((LayerRef(name or "", blobs, f.start, f.end, "layers"), v0))
            elif f.number == _NET_NAME and f.wire_type != LENGTH:
                raise WireError(f"net name has wire type {f.wire_type}", f.start)
        layer_name = None
        if any(v0 is not None for _, v0 in v1):
            layers = []
            for ref, v0 in v1:
                if v0 is None:  # Caffe's V0 upgrade keeps only bottoms/tops of such entries
                    layers.append(LayerRef("", [], ref.start, ref.end, "v0"))
                    continue
                name, blobs, _ = _layer_fields(buf, v0[0], v0[1], _V0_NAME, _V0_BLOBS)
                layer_name = name
                layers.append(LayerRef(name or "", blobs, ref.start, ref.end, "v0"))
            v1_refs, layout = layers, "V0"
        else:
            v1_refs, layout = [ref for ref, _ in v1], "V1"
    except WireError as exc:
        layer = getattr(exc, "layer", None) or _cut_layer_name(buf, exc.offset) or layer_name
        raise CaffeFormatError(f"corrupt or truncated caffemodel: {exc}", path=path,
                               layer=layer) from None
    if current and v1_refs:
        raise CaffeFormatError("the net has both 'layer' (current) and 'layers' (V1) entries; "
                               "Caffe refuses to upgrade such a file", path=path)
    layers = current or v1_refs
    for layer in layers:
        for blob in layer.blobs:
            try:
                _check_shape(blob)
            except ValueError as exc:
                raise CaffeFormatError(str(exc), path=path, layer=layer.name) from None
    return ScannedModel(path, size, "current" if current else (layout if v1_refs else "empty"),
                        layers)


def _materialize(ref: BlobRef, buf: mmap.mmap, fh, copy: bool = True) -> np.ndarray:
    """The blob's values as float32 in its shape.

    With ``copy=False`` a blob stored as one packed float32 run (what Caffe writes) becomes
    a view of ``buf``, which the caller maps copy-on-write: nothing is read until used, and
    writes to the array never reach the file. Every other encoding is decoded into a new
    array.
    """
    n = ref.count
    dtype = np.dtype("<f4") if ref.itemsize == 4 else np.dtype("<f8")
    single = len(ref.runs) == 1 and not ref.strided and ref.itemsize == 4
    if single and not copy and np.little_endian:
        offset, _ = ref.runs[0]
        return np.frombuffer(buf, dtype=np.float32, count=n, offset=offset).reshape(ref.shape)
    if single:
        # one packed run: read straight from the file into the result, no mapping touched
        out = np.empty(n, dtype=np.float32)
        offset, _ = ref.runs[0]
        got = os.preadv(fh.fileno(), [memoryview(out).cast("B")], offset) if hasattr(
            os, "preadv") else _seek_read(fh, out, offset)
        if got != out.nbytes:
            raise OSError(f"short read: {got} of {out.nbytes} bytes")
        if not np.little_endian:  # pragma: no cover - the file is little-endian
            out.byteswap(inplace=True)
        return out.reshape(ref.shape)
    parts = []
    for offset, count in ref.runs:
        parts.append(np.frombuffer(buf, dtype=dtype, count=count, offset=offset))
    stride = 1 + ref.itemsize
    for first, count in ref.strided:
        raw = np.frombuffer(buf, dtype=np.uint8, count=count * stride - 1, offset=first)
        raw = np.lib.stride_tricks.as_strided(raw, shape=(count, ref.itemsize),
                                              strides=(stride, 1))
        parts.append(np.ascontiguousarray(raw).view(dtype).reshape(count))
    flat = np.concatenate(parts) if parts else np.empty(0, dtype)
    return flat.astype(np.float32).reshape(ref.shape)


def mapped_base(arr: np.ndarray) -> Optional[mmap.mmap]:
    """The memory map ``arr`` is a view of (as ``read_weights`` returns them), else None."""
    base = arr
    while isinstance(base, (np.ndarray, memoryview)):
        base = base.base if isinstance(base, np.ndarray) else base.obj
    return base if isinstance(base, mmap.mmap) else None


def copy_and_release(src: np.ndarray, dst: "np.ndarray", chunk_bytes: int = 16 << 20) -> None:
    """Copy ``src`` into ``dst`` (same element count, float32) chunk by chunk, and when ``src``
    is a view of a memory-mapped caffemodel, hand each chunk's pages back to the kernel
    (``MADV_DONTNEED``) once copied: loading a net then holds one copy of the weights (its
    params) plus one chunk, instead of the params plus every mapped page touched.

    After the call the mapped pages read back from the file, so the values of ``src`` are
    unchanged unless it had been written to (private copy-on-write pages are dropped).
    """
    flat_src = src.reshape(-1)
    flat_dst = dst.reshape(-1)
    if flat_src.size != flat_dst.size:
        raise ValueError(f"{flat_src.size} values for {flat_dst.size}")
    mm = mapped_base(src)
    can_release = mm is not None and hasattr(mm, "madvise") and hasattr(mmap, "MADV_DONTNEED")
    step = max(1, chunk_bytes // 4)
    page = mmap.PAGESIZE
    if can_release:
        start_addr = np.frombuffer(mm, dtype=np.uint8, count=1).ctypes.data
    for i in range(0, flat_src.size, step):
        j = min(i + step, flat_src.size)
        flat_dst[i:j] = flat_src[i:j]
        if can_release:
            lo = flat_src[i:j].ctypes.data - start_addr
            hi = lo + (j - i) * 4
            lo_page = (lo + page - 1) // page * page  # only whole pages inside this chunk
            hi_page = hi // page * page
            if hi_page > lo_page:
                mm.madvise(mmap.MADV_DONTNEED, lo_page, hi_page - lo_page)


def _seek_read(fh, out: np.ndarray, offset: int) -> int:
    fh.seek(offset)
    return fh.readinto(memoryview(out).cast("B"))


def open_mapped(path: str, access: int = mmap.ACCESS_READ):
    """Open ``path`` and map it (read-only unless ``access`` says otherwise); raises
    CaffeFormatError for an empty file."""
    fh = open(path, "rb", buffering=0)
    try:
        size = os.fstat(fh.fileno()).st_size
        if size == 0:
            raise CaffeFormatError("file is empty", path=path)
        buf = mmap.mmap(fh.fileno(), 0, access=access)
    except BaseException:
        fh.close()
        raise
    return fh, buf


def scan_file(path: str | os.PathLike) -> ScannedModel:
    path = os.fspath(path)
    fh, buf = open_mapped(path)
    try:
        return scan(buf, path)
    finally:
        buf.close()
        fh.close()


def read_weights_binary(path: str | os.PathLike, *,
                        copy: bool = False) -> "OrderedDict[str, list[np.ndarray]]":
    """Layer name -> float32 blobs of a binary caffemodel, in file order.

    By default the blobs Caffe wrote (one packed float run each) are views of a private,
    copy-on-write memory map of the file: reading costs only the framing walk, pages are
    loaded as the arrays are used, and the arrays are writable without changing the file.
    The map lives as long as any of the arrays; the arrays are C-contiguous but may sit at
    any byte offset (numpy and torch accept unaligned data). Do not truncate or rewrite the
    file in place while they are alive (``write_weights`` replaces files, which is safe).
    ``copy=True`` returns independent, aligned arrays read straight from the file instead.

    Layers without blobs are left out. When a name occurs twice, the later layer's blobs
    are kept: Caffe copies each file layer into the first net layer of that name in turn,
    so the last one wins.
    """
    path = os.fspath(path)
    fh, buf = open_mapped(path, mmap.ACCESS_READ if copy else mmap.ACCESS_COPY)
    try:
        model = scan(buf, path)
        if model.layout == "empty":
            raise CaffeFormatError("no layers found: not a caffemodel (a binary NetParameter)",
                                   path=path)
        out: "OrderedDict[str, list[np.ndarray]]" = OrderedDict()
        for layer in model.layers:
            if not layer.blobs:
                continue
            try:
                arrays = [_materialize(b, buf, fh, copy=copy) for b in layer.blobs]
            except OSError as exc:
                raise CaffeFormatError(f"could not read blob data: {exc}", path=path,
                                       layer=layer.name) from None
            out.pop(layer.name, None)
            out[layer.name] = arrays
        return out
    finally:
        fh.close()  # the map keeps its own handle on the file
        if copy:
            buf.close()
        # else: views may hold the map; it closes when the last of them (or this frame) goes


def _strip(buf, start: int, end: int, drop: int, nested: Optional[tuple[int, int]] = None) -> bytes:
    """The message bytes of ``buf[start:end]`` without field ``drop`` (blob data)."""
    out = bytearray()
    pos = start
    while pos < end:
        tag_pos = pos
        tag, pos = wire.read_varint(buf, pos, end)
        number, wt = tag >> 3, tag & 7
        nxt = wire.skip_field(buf, pos, end, wt, number)
        if number == drop:
            pass
        elif nested is not None and number == nested[0] and wt == LENGTH:
            length, body = wire.read_varint(buf, pos, end)
            inner = _strip(buf, body, body + length, nested[1])
            out += wire.tag(number, LENGTH) + wire.encode_varint(len(inner)) + inner
        else:
            out += buf[tag_pos:nxt]
        pos = nxt
    return bytes(out)


def read_weights_net(path: str | os.PathLike, *, fork: Optional[str] = None,
                     proto: str | os.PathLike | None = None, schema: Optional[Schema] = None):
    """The layer structure stored in a binary caffemodel, upgraded, without blob data.

    ``fork``/``proto`` (or a resolved ``schema``) choose the schema the layers' settings are
    decoded with (see :mod:`caffe_import.proto.schema`). By default (BVLC plus every shipped fork) a field
    number that means different things in different forks is decoded only where the
    layer's type says which meaning applies, and skipped otherwise, as Caffe skips fields
    it does not know: never misread.
    """
    schema = resolve_schema(schema, fork, proto) or get_schema()

    path = os.fspath(path)
    fh, buf = open_mapped(path)
    try:
        scan(buf, path)  # validates framing first
        out = bytearray()
        for f in wire.iter_fields(buf, 0, len(buf)):
            tag_start = f.start
            if f.number == _NET_LAYER and f.wire_type == LENGTH:
                body = _strip(buf, f.start, f.end, _V2_BLOBS)
            elif f.number == _NET_LAYERS_V1 and f.wire_type == LENGTH:
                body = _strip(buf, f.start, f.end, _V1_BLOBS, nested=(_V1_V0, _V0_BLOBS))
            else:
                continue
            del tag_start
            body = schema.to_pool(body, "LayerParameter" if f.number == _NET_LAYER
                                  else "V1LayerParameter")
            out += wire.tag(f.number, LENGTH) + wire.encode_varint(len(body)) + body
        head = _strip(buf, 0, len(buf), _NET_LAYER)
        head = _strip(head, 0, len(head), _NET_LAYERS_V1)
        head = schema.to_pool(head, "NetParameter")
    except WireError as exc:
        raise CaffeFormatError(f"corrupt or truncated caffemodel: {exc}", path=path) from None
    finally:
        buf.close()
        fh.close()
    net = schema.NetParameter()
    try:
        net.ParseFromString(head + bytes(out))
    except Exception as exc:  # protobuf's DecodeError and friends
        raise CaffeFormatError(f"layer structure does not parse: {exc}", path=path) from None
    return upgrade_net(net, path=path)
