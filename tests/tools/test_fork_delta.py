"""tools/fork_delta.py: a fork's caffe.proto reduced to what it adds to BVLC's, as a .proto
whose compiled form merges back into the fork's schema."""
from __future__ import annotations

import importlib.util

import pytest
from google.protobuf import descriptor_pb2 as dpb

from caffe_import.proto import caffe_pb2
from support import ROOT

F = dpb.FieldDescriptorProto


def _tool():
    spec = importlib.util.spec_from_file_location("fork_delta", ROOT / "tools" / "fork_delta.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _fork_descriptor() -> dpb.FileDescriptorProto:
    """BVLC's schema plus what a small fork would add: a layer param, a new message, a
    pooling field, and BVLC's repeated stride written as an old fork's optional one."""
    fd = dpb.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb)
    msgs = {m.name: m for m in fd.message_type}
    msgs["LayerParameter"].field.add(name="my_param", number=5000, label=F.LABEL_OPTIONAL,
                                     type=F.TYPE_MESSAGE, type_name=".caffe.MyParameter")
    my = fd.message_type.add(name="MyParameter")
    my.field.add(name="group", number=1, label=F.LABEL_OPTIONAL, type=F.TYPE_UINT32,
                 default_value="1")
    msgs["PoolingParameter"].field.add(name="ceil_mode", number=13, label=F.LABEL_OPTIONAL,
                                       type=F.TYPE_BOOL, default_value="true")
    stride = next(f for f in msgs["ConvolutionParameter"].field if f.name == "stride")
    stride.label, stride.default_value = F.LABEL_OPTIONAL, "1"
    return fd


def test_delta_lists_only_what_the_fork_adds_or_changes():
    tool = _tool()
    tool._PACKAGE[0] = "caffe.mine"
    base = dpb.FileDescriptorProto.FromString(caffe_pb2.DESCRIPTOR.serialized_pb)
    text = "\n".join(tool.delta(base, _fork_descriptor()))
    assert "optional .caffe.mine.MyParameter my_param = 5000;" in text
    assert "message MyParameter {" in text and "optional uint32 group = 1 [default = 1];" in text
    assert "optional bool ceil_mode = 13 [default = true];" in text
    assert "stride" not in text  # BVLC's repeated stride reads an old fork's optional one
    assert "message NetParameter" not in text  # unchanged messages are left out


def test_rename_maps_a_fork_message_onto_bvlcs():
    tool = _tool()
    fd = dpb.FileDescriptorProto(package="caffe")
    fd.message_type.add(name="LayerParameter").field.add(
        name="interp_param", number=43, label=F.LABEL_OPTIONAL, type=F.TYPE_MESSAGE,
        type_name=".caffe.InterpParameter")
    fd.message_type.add(name="InterpParameter")
    fd.message_type.add(name="NetParameter").field.add(
        name="layers", number=2, label=F.LABEL_REPEATED, type=F.TYPE_MESSAGE,
        type_name=".caffe.LayerParameter")
    tool.rename(fd, "LayerParameter", "V1LayerParameter")
    names = [m.name for m in fd.message_type]
    assert "V1LayerParameter" in names and "LayerParameter" not in names
    net = next(m for m in fd.message_type if m.name == "NetParameter")
    assert net.field[0].type_name == ".caffe.V1LayerParameter"


def test_delta_of_a_real_proto_compiles(tmp_path):
    pytest.importorskip("grpc_tools")
    tool = _tool()
    out = tmp_path / "mine.proto"
    fork = tmp_path / "caffe.proto"
    fork.write_text((ROOT / "caffe_import" / "proto" / "caffe.proto").read_text().replace(
        "message PoolingParameter {", "message PoolingParameter {\n  optional bool ceil_mode = 13 [default = true];", 1)
        .replace("optional PoolingParameter.RoundMode round_mode = 13 [default = CEIL];", ""))
    import contextlib, io
    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        assert tool.main([str(fork), "--fork", "mine"]) == 0
    out.write_text(buf.getvalue())
    assert "optional bool ceil_mode = 13" in buf.getvalue()
    assert "round_mode" not in buf.getvalue()
