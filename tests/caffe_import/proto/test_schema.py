"""Fork schemas: each fork's own field numbers, the default mixture, and the wire
translation between them (caffe_import/proto/schema.py, transcode.py)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.io import read_net, read_weights, read_weights_net, write_weights
from caffe_import.proto import caffe_pb2
from caffe_import.proto.schema import (detected_schema, forks_of_fields, get_schema, is_message,
                                       message_class, schema_of)


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
    # an empty bn_param fits PSPNet's and SegNet's BNParameter, numbered 152 and 45: the
    # fields do not tell which (a net whose fields tell is written: tests/caffe_import/io/
    # test_writer.py)
    net = read_net('layer { name: "b" type: "BN" bottom: "x" top: "y" bn_param { } }')
    assert schema_of(net).name == "default"
    with pytest.raises(CaffeFormatError, match=r"bn_param.*45 in segnet.*152 in pspnet.*fork"):
        write_weights(tmp_path / "m.caffemodel", net, {})


@pytest.mark.parametrize("text, fields", [
    ('layer { name: "r" type: "ReLU" bottom: "x" top: "y" }', ("bvlc",)),
    ('layer { name: "n" type: "Normalize" bottom: "x" top: "y" norm_param { eps: 1 } }',
     ("ssd",)),
    ('layer { name: "b" type: "BN" bottom: "x" top: "y" bn_param { bn_mode: INFERENCE } }',
     ("segnet", "segnet-cudnn5")),
    ('layer { name: "b" type: "BN" bottom: "x" top: "y" bn_param { bn_mode: INFERENCE } }\n'
     'layer { name: "n" type: "Normalize" bottom: "x" top: "z" norm_param { eps: 1 } }', ()),
])
def test_the_fields_a_net_sets_tell_whose_schema_it_is(text, fields):
    net = read_net(text)
    assert forks_of_fields(net) == fields
    assert detected_schema(net) == (" or ".join(fields) or "default")
    if fields:  # a named schema is shown as named
        assert detected_schema(read_net(text, fork=fields[-1])) == fields[-1]


def test_bvlc_nets_read_with_caffe_pb2_and_fork_nets_with_the_default():
    plain = read_net('layer { name: "r" type: "ReLU" bottom: "x" top: "x" }')
    assert type(plain) is caffe_pb2.NetParameter
    fork = read_net('layer { name: "i" type: "Interp" bottom: "x" top: "y" interp_param { zoom_factor: 2 } }')
    assert schema_of(fork).name == "default" and fork.layer[0].interp_param.zoom_factor == 2


USER_PROTO = '''syntax = "proto2";
package caffe;
message LayerParameter { optional MyParameter my_param = 5000; }
message MyParameter { optional float alpha = 1 [default = 0.5]; repeated uint32 dims = 2; }
'''


def _user_descriptor_set(tmp_path) -> Path:
    """What 'protoc --descriptor_set_out' writes for USER_PROTO (built here without protoc)."""
    from google.protobuf import descriptor_pb2 as dpb
    fd = dpb.FileDescriptorProto(name="my_caffe.proto", package="caffe", syntax="proto2")
    layer = fd.message_type.add(name="LayerParameter")
    layer.field.add(name="my_param", number=5000, type=dpb.FieldDescriptorProto.TYPE_MESSAGE,
                    label=dpb.FieldDescriptorProto.LABEL_OPTIONAL, type_name=".caffe.MyParameter")
    my = fd.message_type.add(name="MyParameter")
    my.field.add(name="alpha", number=1, type=dpb.FieldDescriptorProto.TYPE_FLOAT,
                 label=dpb.FieldDescriptorProto.LABEL_OPTIONAL, default_value="0.5")
    my.field.add(name="dims", number=2, type=dpb.FieldDescriptorProto.TYPE_UINT32,
                 label=dpb.FieldDescriptorProto.LABEL_REPEATED)
    path = tmp_path / "my_caffe.pb"
    path.write_bytes(dpb.FileDescriptorSet(file=[fd]).SerializeToString())
    return path


def _check_user_schema(proto_path, tmp_path):
    text = 'layer { name: "m" type: "Mine" my_param { alpha: 2 dims: [3, 4] } }'
    net = read_net(text, proto=proto_path)
    assert schema_of(net).name.startswith("proto:") and net.layer[0].my_param.alpha == 2
    path = tmp_path / "m.caffemodel"
    write_weights(path, net, {"m": [np.zeros(1, np.float32)]})
    assert b"\xc2\xb8\x02" in path.read_bytes()  # field 5000, length-delimited, on disk
    assert list(read_weights_net(path, proto=proto_path).layer[0].my_param.dims) == [3, 4]
    # the default schema does not know field 5000: not decoded (kept opaque, as Caffe does)
    assert [f.name for f, _ in read_weights_net(path).layer[0].ListFields()] == ["name", "type"]


def test_user_schema_from_a_descriptor_set(tmp_path):
    _check_user_schema(_user_descriptor_set(tmp_path), tmp_path)


def test_user_schema_from_a_proto_file_compiled_at_run_time(tmp_path):
    pytest.importorskip("grpc_tools")
    proto = tmp_path / "my_caffe.proto"
    proto.write_text(USER_PROTO)
    _check_user_schema(proto, tmp_path)


def test_proto_file_without_grpc_tools_says_what_to_install(tmp_path, monkeypatch):
    import sys
    monkeypatch.setitem(sys.modules, "grpc_tools", None)
    proto = tmp_path / "my_caffe.proto"
    proto.write_text(USER_PROTO)
    with pytest.raises(UsageError, match="grpcio-tools.*descriptor_set_out"):
        get_schema(proto=proto)


def test_proto_file_with_a_grpc_tools_that_fails_to_import_says_why(tmp_path, monkeypatch):
    """grpcio-tools releases for protobuf 4 import pkg_resources, which setuptools 81
    removed: the error names what failed, not "needs grpcio-tools" (it is installed)."""
    import sys
    fake = tmp_path / "site" / "grpc_tools"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import pkg_resources\n")
    monkeypatch.syspath_prepend(str(fake.parent))
    monkeypatch.delitem(sys.modules, "grpc_tools", raising=False)
    monkeypatch.delitem(sys.modules, "grpc_tools.protoc", raising=False)
    monkeypatch.setitem(sys.modules, "pkg_resources", None)
    proto = tmp_path / "my_caffe.proto"
    proto.write_text(USER_PROTO)
    with pytest.raises(UsageError, match=r"grpcio-tools, which is installed but fails to import "
                                         r"\(ModuleNotFoundError: .*pkg_resources.*setuptools<81"):
        get_schema(proto=proto)


def test_user_layer_reads_its_own_fields_and_the_artefact_keeps_the_schema(tmp_path):
    import torch
    from caffe_import import CaffeNet, load
    from caffe_import.convert import save_converted
    from caffe_import.layers.base import CaffeLayer
    from caffe_import.layers.registry import get, register

    if get("TestMine") is None:
        @register("TestMine")
        class _Mine(CaffeLayer):
            def top_shapes(self, bottom_shapes):
                return [bottom_shapes[0]]

            def forward(self, x):
                return (x * self.param.my_param.alpha,)

    pb = _user_descriptor_set(tmp_path)
    text = ('input: "x" input_shape { dim: 1 dim: 2 } '
            'layer { name: "m" type: "TestMine" bottom: "x" top: "y" my_param { alpha: 3 } }')
    net = CaffeNet(text, proto=pb)
    assert net(x=torch.ones(1, 2))["y"].tolist() == [[3.0, 3.0]]
    save_converted(net, tmp_path / "m.pt")
    pb.unlink()  # the artefact is self-contained: it carries the schema
    assert load(tmp_path / "m.pt")(x=torch.ones(1, 2))["y"].tolist() == [[3.0, 3.0]]


def test_a_v1_era_user_schema_is_read_as_bvlcs_v1_layers(tmp_path):
    """A fork from before Caffe's current layer format (DeepLab v1) calls its V1 layer
    'LayerParameter': its fields land on V1LayerParameter, and its own V1 types upgrade."""
    from google.protobuf import descriptor_pb2 as dpb
    F = dpb.FieldDescriptorProto
    fd = dpb.FileDescriptorProto(name="old_caffe.proto", package="caffe", syntax="proto2")
    net = fd.message_type.add(name="NetParameter")
    net.field.add(name="layers", number=2, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE,
                  type_name=".caffe.LayerParameter")
    layer = fd.message_type.add(name="LayerParameter")
    types = layer.enum_type.add(name="LayerType")
    types.value.add(name="NONE", number=0)
    types.value.add(name="MY_INTERP", number=141)
    layer.field.add(name="name", number=4, label=F.LABEL_OPTIONAL, type=F.TYPE_STRING)
    layer.field.add(name="type", number=5, label=F.LABEL_OPTIONAL, type=F.TYPE_ENUM,
                    type_name=".caffe.LayerParameter.LayerType")
    layer.field.add(name="my_interp_param", number=143, label=F.LABEL_OPTIONAL,
                    type=F.TYPE_MESSAGE, type_name=".caffe.MyInterpParameter")
    fd.message_type.add(name="MyInterpParameter").field.add(
        name="zoom", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_INT32)
    path = tmp_path / "old.pb"
    path.write_bytes(dpb.FileDescriptorSet(file=[fd]).SerializeToString())
    net = read_net('layers { name: "i" type: MY_INTERP my_interp_param { zoom: 2 } }', proto=path)
    assert net.layer[0].type == "MyInterp" and net.layer[0].my_interp_param.zoom == 2


def test_resolve_schema_takes_a_schema_or_a_fork_selection_once():
    from caffe_import.proto.schema import resolve_schema

    ssd = get_schema("ssd")
    assert resolve_schema() is None  # nothing named: readers choose by content
    assert resolve_schema(ssd) is ssd and resolve_schema(fork="ssd") is ssd
    assert resolve_schema(fork="bvlc").NetParameter is caffe_pb2.NetParameter
    with pytest.raises(UsageError, match="not both"):
        resolve_schema(ssd, fork="ssd")
    with pytest.raises(TypeError, match="get_schema"):
        resolve_schema("ssd")


def test_the_schema_module_holds_no_selected_schema():
    import caffe_import.proto.schema as module

    for name in ("_SESSION", "using_schema", "session_schema"):
        assert not hasattr(module, name)
