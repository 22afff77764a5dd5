"""Renumber the fields of serialized Caffe messages between a fork's wire numbers and a
merged schema's pool numbers (see :mod:`caffe_import.proto.schema`).

Only the framing is walked (tags and lengths, with the bounds checks of
:mod:`caffe_import.proto.wire`); payloads are copied as they are, and sub-messages are entered
only when some field below them is renumbered.
"""
from __future__ import annotations

from typing import Any, Optional

from ..errors import CaffeFormatError
from . import wire

_LAYER = "caffe.LayerParameter"


class AmbiguousNumber(CaffeFormatError):
    """A field to write whose wire number differs between the merged forks: the writer
    turns it into advice naming the fork (it knows the whole net)."""

    def __init__(self, detail: str, layer: Optional[str] = None) -> None:
        super().__init__(detail, layer=layer)
        self.detail = detail


def _layer_type(data: bytes) -> Optional[str]:
    """The ``type`` string (field 2) of a serialized LayerParameter, if any."""
    for f in wire.iter_fields(data, 0, len(data)):
        if f.number == 2 and f.wire_type == wire.LENGTH:
            try:
                return bytes(data[f.start:f.end]).decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None


def _dirty(schema: Any, desc: Any, read: bool, seen: Optional[set] = None) -> bool:
    """Whether any field of ``desc`` or below it is renumbered in this direction."""
    cache = schema.__dict__.setdefault("_dirty_cache", {})
    key = (desc.full_name, read)
    if key in cache:
        return cache[key]
    table = schema.wire_to_pool if read else schema.pool_to_wire
    if desc.full_name in table or (read and desc.full_name == _LAYER and schema.by_layer_type):
        cache[key] = True
        return True
    seen = set() if seen is None else seen
    if desc.full_name in seen:
        return False
    seen.add(desc.full_name)
    result = any(f.message_type is not None and _dirty(schema, f.message_type, read, seen)
                 for f in desc.fields)
    if len(seen) == 1 or result:
        cache[key] = result
    return result


def transcode(schema: Any, data: bytes, desc: Any, read: bool,
              layer: Optional[str] = None) -> bytes:
    """``data`` (a serialized ``desc`` message) renumbered: wire -> pool when ``read``,
    pool -> wire otherwise (then fields are emitted in number order, as protobuf does).
    ``layer``: the layer ``data`` belongs to, named in an :class:`AmbiguousNumber`."""
    if not _dirty(schema, desc, read):
        return bytes(data)
    table = (schema.wire_to_pool if read else schema.pool_to_wire).get(desc.full_name, {})
    contested = schema.by_layer_type if read and desc.full_name == _LAYER else {}
    layer_type = _layer_type(data) if contested else None
    parts: list[tuple[int, bytes]] = []
    pos, end = 0, len(data)
    while pos < end:
        tag, body = wire.read_varint(data, pos, end)
        number, wt = tag >> 3, tag & 7
        nxt = wire.skip_field(data, body, end, wt, number)
        target = table.get(number, number)
        if number in contested:
            target = contested[number].get(layer_type) if layer_type is not None else None
        if target is None or wt == wire.START_GROUP and target != number:
            pos = nxt  # not in this schema's wire format: skipped, as Caffe skips unknowns
            continue
        if target == -1:
            fd = desc.fields_by_number.get(number)
            raise AmbiguousNumber(
                f"field '{fd.name if fd else number}' of {desc.name} has different numbers in "
                f"the merged forks ({schema.ambiguous.get((desc.full_name, number), '?')})",
                layer=layer)
        fd = desc.fields_by_number.get(target if read else number)
        if fd is not None and fd.message_type is not None and wt == wire.LENGTH:
            length, start = wire.read_varint(data, body, end)
            inner = transcode(schema, data[start:start + length], fd.message_type, read, layer)
            payload = wire.encode_varint(len(inner)) + inner
        else:
            payload = bytes(data[body:nxt])
        parts.append((target, wire.tag(target, wt) + payload))
        pos = nxt
    if not read:
        parts.sort(key=lambda p: p[0])
    return b"".join(p for _, p in parts)
