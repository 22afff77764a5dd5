"""Protocol-buffer wire format, decoded by hand over a buffer (bytes, mmap, memoryview).

Only what the weight reader and writer and the fork transcoder need: varints, tags, field
skipping (:func:`skip_field`), and iteration over the fields of one message inside
``[start, end)``. Every length is checked against the end of
the enclosing message, so a corrupt or truncated file raises :class:`WireError` instead of
reading past what the file holds, and nothing is allocated from a length the file claims.
"""
from __future__ import annotations

from typing import Iterator, NamedTuple

VARINT, FIXED64, LENGTH, START_GROUP, END_GROUP, FIXED32 = 0, 1, 2, 3, 4, 5
MAX_GROUP_DEPTH = 64


class WireError(Exception):
    """Malformed wire data at byte ``offset``; callers turn it into CaffeFormatError."""

    def __init__(self, message: str, offset: int) -> None:
        super().__init__(f"{message} at byte {offset}")
        self.offset = offset


class Field(NamedTuple):
    """One field occurrence: number, wire type, and where its payload lies.

    For VARINT ``value`` holds the decoded integer and ``start == end`` after it; for
    LENGTH, FIXED32 and FIXED64 the payload is ``buf[start:end]``.
    """

    number: int
    wire_type: int
    start: int
    end: int
    value: int


def read_varint(buf, pos: int, end: int) -> tuple[int, int]:
    """Decode an unsigned varint at ``pos``; return ``(value, next_pos)``."""
    result = 0
    shift = 0
    while True:
        if pos >= end:
            raise WireError("truncated varint", pos)
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift >= 70:
            raise WireError("varint longer than 10 bytes", pos)


def as_int32(value: int) -> int:
    """Reinterpret a decoded varint as the signed int32/int64 protobuf meant."""
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


def _skip_group(buf, pos: int, end: int, number: int, depth: int) -> int:
    if depth > MAX_GROUP_DEPTH:
        raise WireError("groups nested too deeply", pos)
    while True:
        tag, pos = read_varint(buf, pos, end)
        wire_type, inner = tag & 7, tag >> 3
        if wire_type == END_GROUP:
            if inner != number:
                raise WireError(f"end of group {inner} closes group {number}", pos)
            return pos
        pos = skip_field(buf, pos, end, wire_type, inner, depth + 1)


def skip_field(buf, pos: int, end: int, wire_type: int, number: int, depth: int = 0) -> int:
    """The position after the payload of field ``number`` (wire type ``wire_type``) whose tag
    ends at ``pos``; a group is skipped up to its matching end tag (nested at most
    ``MAX_GROUP_DEPTH`` deep). Raises :class:`WireError` for a payload past ``end``."""
    if wire_type == VARINT:
        return read_varint(buf, pos, end)[1]
    if wire_type == FIXED64:
        nxt = pos + 8
    elif wire_type == FIXED32:
        nxt = pos + 4
    elif wire_type == LENGTH:
        length, pos = read_varint(buf, pos, end)
        nxt = pos + length
    elif wire_type == START_GROUP:
        return _skip_group(buf, pos, end, number, depth)
    else:
        raise WireError(f"invalid wire type {wire_type} for field {number}", pos)
    if nxt > end:
        raise WireError(f"field {number} runs past the end of its message", pos)
    return nxt


def iter_fields(buf, start: int, end: int) -> Iterator[Field]:
    """Yield the fields of the message stored in ``buf[start:end]``, in file order."""
    pos = start
    while pos < end:
        tag_pos = pos
        tag, pos = read_varint(buf, pos, end)
        number, wire_type = tag >> 3, tag & 7
        if number == 0:
            raise WireError("field number 0", tag_pos)
        if wire_type == VARINT:
            value, pos = read_varint(buf, pos, end)
            yield Field(number, wire_type, pos, pos, value)
        elif wire_type == LENGTH:
            length, pos = read_varint(buf, pos, end)
            if pos + length > end:
                raise WireError(f"field {number} claims {length} bytes, more than its message holds",
                                tag_pos)
            yield Field(number, wire_type, pos, pos + length, length)
            pos += length
        elif wire_type in (FIXED32, FIXED64):
            size = 4 if wire_type == FIXED32 else 8
            if pos + size > end:
                raise WireError(f"truncated fixed{size * 8} field {number}", tag_pos)
            yield Field(number, wire_type, pos, pos + size, 0)
            pos += size
        elif wire_type == START_GROUP:
            pos = _skip_group(buf, pos, end, number, 0)  # unknown group: skipped, as protobuf does
        else:
            raise WireError(f"invalid wire type {wire_type} for field {number}", tag_pos)


def encode_varint(value: int) -> bytes:
    """Varint bytes of a non-negative integer (negative int32/int64 use 10 bytes)."""
    if value < 0:
        value &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if value:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def tag(number: int, wire_type: int) -> bytes:
    return encode_varint((number << 3) | wire_type)
