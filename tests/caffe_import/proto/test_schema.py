"""Fork schemas: each fork's own field numbers, the default mixture, and the wire
translation between them (caffe_import/proto/schema.py, transcode.py)."""
from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.io import read_net, read_weights, read_weights_net, write_weights
from caffe_import.proto import caffe_pb2, forks_pb
from caffe_import.proto.schema import (FORKS, get_schema, is_message, message_class,
                                       schema_of)

FORKS_DIR = Path(__file__).resolve().parents[3] / "caffe_import" / "proto" / "forks"


def test_shipped_deltas_match_their_proto_files():
    for proto in FORKS_DIR.glob("*.proto"):
        assert forks_pb.SOURCE_SHA256[proto.stem] == hashlib.sha256(
            proto.read_bytes()).hexdigest(), "forks_pb.py is stale: run tools/gen_proto.py"
    assert set(forks_pb.DELTAS) == set(FORKS)


def test_bvlc_schema_is_caffe_pb2():
    schema = get_schema("bvlc")
    assert schema.NetParameter is caffe_pb2.NetParameter and schema.identity


@pytest.mark.parametrize("fork, message, field, number", [
    ("ssd", "LayerParameter", "norm_param", 206), ("ssd", "LayerParameter", "permute_param", 202),
    ("ssd", "LayerParameter", "prior_box_param", 203),
    ("ssd", "LayerParameter", "detection_output_param", 204),
    ("ssd", "LayerParameter", "multibox_loss_param", 201),
    ("ssd", "LayerParameter", "annotated_data_param", 200),
    ("pspnet", "LayerParameter", "interp_param", 143), ("pspnet", "LayerParameter", "bn_param", 152),
    ("segnet", "LayerParameter", "bn_param", 45), ("segnet", "LayerParameter", "upsample_param", 137),
    ("segnet", "LayerParameter", "dense_image_data_param", 138),
    ("segnet-cudnn5", "LayerParameter", "upsample_param", 147),
    ("segnet-cudnn5", "LayerParameter", "dense_image_data_param", 46),
    ("fast-rcnn", "LayerParameter", "roi_pooling_param", 8266711),
    ("fast-rcnn", "LayerParameter", "smooth_l1_loss_param", 8266712),
    ("segnet", "BNParameter", "bn_mode", 3), ("pspnet", "BNParameter", "frozen", 5),
    ("ssd", "PriorBoxParameter", "offset", 13), ("ssd", "DetectionOutputParameter", "code_type", 6),
])
def test_fork_fields_have_the_forks_numbers_on_the_wire(fork, message, field, number):
    schema = get_schema(fork)
    desc = schema.message(message).DESCRIPTOR
    pool_number = desc.fields_by_name[field].number
    wire = schema.pool_to_wire.get(desc.full_name, {}).get(pool_number, pool_number)
    assert wire == number


def test_unknown_fork_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown Caffe fork 'nope'.*ssd"):
        get_schema("nope")


def test_messages_know_their_schema_and_classes():
    net = get_schema("ssd").NetParameter()
    layer = net.layer.add()
    assert schema_of(layer).name == "ssd" and is_message(net, "NetParameter")
    assert message_class(net, "LayerParameter") is type(layer)
    assert schema_of(caffe_pb2.NetParameter()).name == "bvlc"


def _one_layer_net(schema, layer_text: str):
    from google.protobuf import text_format
    net = schema.NetParameter()
    text_format.Parse(f'name: "n" layer {{ {layer_text} }}', net)
    return net


@pytest.mark.parametrize("fork, layer_text, check", [
    ("pspnet", 'name: "i" type: "Interp" interp_param { zoom_factor: 8 }',
     lambda l: l.interp_param.zoom_factor == 8),
    ("segnet", 'name: "b" type: "BN" bn_param { bn_mode: INFERENCE }',
     lambda l: l.bn_param.bn_mode == 1),
    ("ssd", 'name: "n" type: "Normalize" norm_param { across_spatial: false channel_shared: false }',
     lambda l: not l.norm_param.across_spatial and l.norm_param.HasField("channel_shared")),
])
def test_caffemodel_round_trip_keeps_fork_fields(tmp_path, fork, layer_text, check):
    schema = get_schema(fork)
    net = _one_layer_net(schema, layer_text)
    path = tmp_path / "m.caffemodel"
    name = net.layer[0].name
    write_weights(path, net, {name: [np.arange(3, dtype=np.float32)]})
    back = read_weights_net(path, fork=fork)
    assert check(back.layer[0])
    assert np.array_equal(read_weights(path)[name][0], np.arange(3))


def test_pspnet_interp_is_field_143_on_disk_and_never_read_as_input_param(tmp_path):
    net = _one_layer_net(get_schema("pspnet"), 'name: "i" type: "Interp" interp_param { height: 7 }')
    path = tmp_path / "m.caffemodel"
    write_weights(path, net, {})
    raw = path.read_bytes()
    assert b"\xfa\x08\x02\x08\x07" in raw  # tag of field 143, length-delimited: what PSPNet's Caffe writes
    # default schema: 143 is input_param in BVLC, interp_param in PSPNet; the type decides
    layer = read_weights_net(path).layer[0]
    assert layer.interp_param.height == 7 and not layer.HasField("input_param")
    # BVLC's schema does not know interp_param: 143 read as input_param would be a misread;
    # protobuf keeps it as an unknown/garbled field; the fork named reads it right
    assert read_weights_net(path, fork="pspnet").layer[0].interp_param.height == 7


def test_default_skips_numbers_whose_meaning_the_layer_type_does_not_decide(tmp_path):
    # SegNet's upsample_param (137) on a layer whose type is not Upsample: 137 is BVLC's
    # embed_param too, so the default schema skips it instead of guessing
    net = _one_layer_net(get_schema("segnet"), 'name: "u" type: "Odd" upsample_param { scale: 2 }')
    path = tmp_path / "m.caffemodel"
    write_weights(path, net, {})
    layer = read_weights_net(path).layer[0]
    assert not layer.HasField("upsample_param") and not layer.HasField("embed_param")
    assert read_weights_net(path, fork="segnet").layer[0].upsample_param.scale == 2


def test_default_refuses_to_write_a_field_whose_number_differs_between_forks(tmp_path):
    net = read_net('layer { name: "b" type: "BN" bottom: "x" top: "y" bn_param { bn_mode: INFERENCE } }')
    assert schema_of(net).name == "default"
    with pytest.raises(CaffeFormatError, match=r"bn_param.*45 in segnet.*152 in pspnet.*fork"):
        write_weights(tmp_path / "m.caffemodel", net, {})


def test_bvlc_nets_read_with_caffe_pb2_and_fork_nets_with_the_default():
    plain = read_net('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }')
    assert type(plain) is caffe_pb2.NetParameter
    fork = read_net('layer { name: "i" type: "Interp" bottom: "x" top: "y" interp_param { zoom_factor: 2 } }')
    assert schema_of(fork).name == "default" and fork.layer[0].interp_param.zoom_factor == 2
