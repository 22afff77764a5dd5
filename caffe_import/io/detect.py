"""What kind of Caffe file a path holds, judged by its content (never its name).

Caffe itself dispatches weights on ``H5Fis_hdf5``; the protobuf kinds are told apart by the
top-level field numbers and wire types of the first fields.
"""
from __future__ import annotations

import os

from ..proto import wire

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
HDF5 = "hdf5"
CAFFEMODEL = "caffemodel"  # binary NetParameter
BINARYPROTO = "binaryproto"  # BlobProto (means)
BLOBPROTOVECTOR = "blobprotovector"
SOLVERSTATE = "solverstate"
PROTOTXT = "prototxt"
UNKNOWN = "unknown"

_PROBE = 1 << 16


def is_hdf5(head: bytes) -> bool:
    """HDF5 files start with the signature at 0, 512, 1024, 2048 ... (after a user block)."""
    offset = 0
    while offset + 8 <= len(head):
        if head[offset:offset + 8] == HDF5_SIGNATURE:
            return True
        offset = 512 if offset == 0 else offset * 2
    return False


def _looks_textual(head: bytes) -> bool:
    if not head or b"\x00" in head:
        return False
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 4:  # a multi-byte character cut by the probe is fine
            return False
    return all(b >= 0x20 or b in b"\t\n\r\f\v" for b in head[:4096])


def _top_fields(path: str, size: int, limit: int = 64) -> list[tuple[int, int]]:
    """(number, wire type) of the first top-level fields; raises WireError if malformed."""
    import mmap

    fields = []
    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        for f in wire.iter_fields(buf, 0, size):
            fields.append((f.number, f.wire_type))
            if len(fields) >= limit:
                break
    return fields


def detect(path: str | os.PathLike) -> str:
    """One of ``hdf5``, ``caffemodel``, ``binaryproto``, ``blobprotovector``, ``solverstate``,
    ``prototxt`` or ``unknown``."""
    path = os.fspath(path)
    size = os.path.getsize(path)
    with open(path, "rb") as fh:
        head = fh.read(min(size, _PROBE))
    if is_hdf5(head):
        return HDF5
    if _looks_textual(head):
        return PROTOTXT
    if size == 0:
        return UNKNOWN
    try:
        fields = _top_fields(path, size)
    except wire.WireError:
        return UNKNOWN
    numbers = {n: t for n, t in fields}
    L, V = wire.LENGTH, wire.VARINT
    if numbers.get(100) == L or (numbers.get(2) == L and numbers.get(1, L) == L
                                 and 5 not in numbers and 7 not in numbers):
        return CAFFEMODEL
    if numbers and all(n in (1, 2, 3, 4) and t == V or n in (5, 6, 7, 8, 9) and t in (L, 1, 5)
                       for n, t in fields):
        return BINARYPROTO
    if numbers and set(numbers) <= {1, 2, 3, 4} and numbers.get(1, V) == V \
            and numbers.get(4, V) == V and numbers.get(3, L) == L:
        return SOLVERSTATE
    if set(numbers) == {1} and numbers[1] == L:
        # a NetParameter holding only a name, or a BlobProtoVector; look inside
        return BLOBPROTOVECTOR if _first_is_blob(path) else CAFFEMODEL
    return UNKNOWN


def _first_is_blob(path: str) -> bool:
    import mmap

    with open(path, "rb") as fh, mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        first = next(wire.iter_fields(buf, 0, len(buf)))
        try:
            inner = list(wire.iter_fields(buf, first.start, first.end))
        except wire.WireError:
            return False
    return bool(inner) and all(n.number in range(1, 10) for n in inner)
