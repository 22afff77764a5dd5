"""The merge engine on its own: BVLC's descriptor plus fork deltas -> one pool, conflicts and
relocated numbers recorded, and the wire tables filled (caffe_import/proto/merge.py; the schema
tests cover it through get_schema)."""
from __future__ import annotations

from types import SimpleNamespace

from google.protobuf import descriptor_pb2 as dpb

from caffe_import.proto import caffe_pb2, merge
from caffe_import.proto.catalogue import delta


def _tables() -> SimpleNamespace:
    return SimpleNamespace(pool_to_wire={}, wire_to_pool={}, by_layer_type={}, ambiguous={})


def _number(merged: merge.Merged, message: str, field: str) -> int:
    return merged.pool.FindMessageTypeByName(f"caffe.{message}").fields_by_name[field].number


def test_one_fork_merged_alone_keeps_its_numbers_and_owns_its_fields():
    merged = merge.merge("ssd", [("ssd", delta("ssd"))], single=True)
    assert _number(merged, "LayerParameter", "norm_param") == 206
    assert merged.owner[("LayerParameter", "norm_param")] == "ssd"
    assert merged.views[0][0] == "bvlc" and merged.views[1][0] == "ssd"
    tables = _tables()
    merge.wire_maps(tables, merged, single=True)
    assert not tables.ambiguous


def test_the_mixture_keeps_the_first_forks_field_and_marks_its_other_numbers_ambiguous():
    merged = merge.merge("mix", [("pspnet", delta("pspnet")), ("segnet", delta("segnet"))],
                         single=False)
    bn = _number(merged, "LayerParameter", "bn_param")  # 152 in PSPNet, 45 in SegNet
    assert bn == 152  # the first fork keeps the name (one BNParameter with both forks' fields)
    assert merged.owner[("LayerParameter", "bn_param")] == "pspnet"
    # SegNet's upsample_param 137 is BVLC's embed_param: moved aside to a private number
    assert _number(merged, "LayerParameter", "upsample_param") >= merge.RELOCATED_BASE
    assert _number(merged, "LayerParameter", "embed_param") == 137
    tables = _tables()
    merge.wire_maps(tables, merged, single=False)
    assert tables.pool_to_wire["caffe.LayerParameter"][bn] == merge.AMBIGUOUS
    assert "45 in segnet" in tables.ambiguous[("caffe.LayerParameter", bn)]
    # PSPNet's 143 (interp_param) is BVLC's input_param: the layer type decides it
    assert tables.by_layer_type[143] == {
        "Input": _number(merged, "LayerParameter", "input_param"),
        "Interp": _number(merged, "LayerParameter", "interp_param")}


def test_a_user_schema_from_before_the_current_layer_format_is_merged_as_v1_layers():
    user = dpb.FileDescriptorProto(name="old.proto", package="caffe")
    net = user.message_type.add(name="NetParameter")
    net.field.add(name="layers", number=2, type=dpb.FieldDescriptorProto.TYPE_MESSAGE,
                  label=dpb.FieldDescriptorProto.LABEL_REPEATED, type_name=".caffe.LayerParameter")
    user.message_type.add(name="LayerParameter").field.add(
        name="my_param", number=5000, type=dpb.FieldDescriptorProto.TYPE_INT32,
        label=dpb.FieldDescriptorProto.LABEL_OPTIONAL)
    assert merge.v1_era(user)
    moved = merge.user_delta(user)
    assert moved.package == "caffe.user" and user.package == "caffe"  # the input is left alone
    assert [m.name for m in moved.message_type] == ["NetParameter", "V1LayerParameter"]
    merged = merge.merge("old", [("old", moved)], single=True)
    assert _number(merged, "V1LayerParameter", "my_param") == 5000
    assert merged.pool is not caffe_pb2.DESCRIPTOR.pool
