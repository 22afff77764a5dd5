"""The hand-decoded wire format: skipping a field of each wire type, groups included, and
refusing payloads that run past their message."""
from __future__ import annotations

import pytest

from caffe_import.proto import wire


def test_skip_field_steps_over_every_wire_type():
    payload = b"".join([
        wire.tag(1, wire.VARINT) + wire.encode_varint(300),
        wire.tag(2, wire.FIXED64) + bytes(8),
        wire.tag(3, wire.LENGTH) + wire.encode_varint(3) + b"abc",
        wire.tag(4, wire.FIXED32) + bytes(4),
        wire.tag(5, wire.START_GROUP) + wire.tag(1, wire.VARINT) + b"\x01"
        + wire.tag(5, wire.END_GROUP),
    ])
    pos, numbers = 0, []
    while pos < len(payload):
        tag, pos = wire.read_varint(payload, pos, len(payload))
        numbers.append(tag >> 3)
        pos = wire.skip_field(payload, pos, len(payload), tag & 7, tag >> 3)
    assert numbers == [1, 2, 3, 4, 5] and pos == len(payload)


def test_skip_field_refuses_a_payload_past_the_end():
    data = wire.tag(3, wire.LENGTH) + wire.encode_varint(10) + b"abc"
    tag, pos = wire.read_varint(data, 0, len(data))
    with pytest.raises(wire.WireError, match="runs past the end"):
        wire.skip_field(data, pos, len(data), tag & 7, tag >> 3)
    group = wire.tag(5, wire.START_GROUP) + wire.tag(6, wire.END_GROUP)
    with pytest.raises(wire.WireError, match="closes group 5"):
        wire.skip_field(group, 1, len(group), wire.START_GROUP, 5)
