"""The net-spec DSL: kwarg routing onto LayerParameter, naming, in-place layers, errors."""
from __future__ import annotations

import pytest
from google.protobuf import text_format

from caffe_import.errors import CaffeFormatError
from caffe_import.proto import caffe_pb2
from caffe_import.netspec import L, NetSpec, P, param_field_for_type, to_proto


def small_net() -> NetSpec:
    n = NetSpec()
    n.data, n.label = L.Python(module="voc_layers", layer="VOCSegDataLayer", ntop=2,
                               param_str="{'split': 'train'}")
    n.conv1 = L.Convolution(n.data, kernel_size=3, pad=1, num_output=8,
                            param=[dict(lr_mult=1, decay_mult=1), dict(lr_mult=2, decay_mult=0)])
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.loss = L.SoftmaxWithLoss(n.pool1, n.label, loss_param=dict(normalize=False, ignore_label=255))
    return n


def layer(net: caffe_pb2.NetParameter, name: str) -> caffe_pb2.LayerParameter:
    return next(lp for lp in net.layer if lp.name == name)


def test_flat_kwargs_go_to_the_types_own_param_message():
    conv = layer(small_net().to_proto(), "conv1")
    assert conv.type == "Convolution"
    # a scalar given for a repeated field becomes a one-element list
    assert list(conv.convolution_param.kernel_size) == [3]
    assert list(conv.convolution_param.pad) == [1]
    assert conv.convolution_param.num_output == 8
    assert [(p.lr_mult, p.decay_mult) for p in conv.param] == [(1, 1), (2, 0)]


def test_param_fields_are_found_from_the_schema():
    assert param_field_for_type("InnerProduct") == "inner_product_param"
    assert param_field_for_type("ReLU") == "relu_param"
    assert param_field_for_type("LRN") == "lrn_param"
    assert param_field_for_type("Python") == "python_param"
    # Caffe's deconvolution reads convolution_param, so flat kwargs go there too
    assert param_field_for_type("Deconvolution") == "convolution_param"
    assert param_field_for_type("SoftmaxWithLoss") is None


def test_deconvolution_takes_flat_or_nested_convolution_kwargs():
    n = NetSpec()
    n.x = L.Input(shape=dict(dim=[1, 2, 4, 4]))
    n.a = L.Deconvolution(n.x, kernel_size=4, stride=2, num_output=2, bias_term=False)
    n.b = L.Deconvolution(n.x, convolution_param=dict(kernel_size=4, stride=2, num_output=2,
                                                      bias_term=False))
    net = n.to_proto()
    assert layer(net, "a").convolution_param == layer(net, "b").convolution_param


def test_other_kwargs_fall_back_to_layer_parameter():
    n = NetSpec()
    n.x = L.Input(shape=dict(dim=[1, 3]))
    n.y = L.Input(shape=dict(dim=[1]))
    n.loss = L.SoftmaxWithLoss(n.x, n.y, loss_weight=0.5, include=dict(phase="TRAIN"),
                               propagate_down=[True, False])
    lp = layer(n.to_proto(), "loss")
    assert list(lp.loss_weight) == [0.5]
    assert lp.include[0].phase == caffe_pb2.TRAIN
    assert list(lp.propagate_down) == [True, False]


def test_enums_by_name_or_by_params_namespace():
    n = NetSpec()
    n.x = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    n.a = L.Pooling(n.x, pool="AVE", kernel_size=2)
    n.b = L.Pooling(n.x, pool=P.Pooling.AVE, kernel_size=2)
    net = n.to_proto()
    assert layer(net, "a").pooling_param.pool == caffe_pb2.PoolingParameter.AVE
    assert layer(net, "a").pooling_param == layer(net, "b").pooling_param
    assert P.Eltwise.SUM == caffe_pb2.EltwiseParameter.SUM


def test_in_place_layer_is_named_by_its_assignment_but_writes_its_bottom():
    net = small_net().to_proto()
    relu = layer(net, "relu1")
    assert list(relu.bottom) == ["conv1"] and list(relu.top) == ["conv1"]
    # users of the in-place top read the blob it rewrote
    assert list(layer(net, "pool1").bottom) == ["conv1"]


def test_layers_come_out_inputs_first_in_assignment_order():
    net = small_net().to_proto()
    assert [lp.name for lp in net.layer] == ["data", "conv1", "relu1", "pool1", "loss"]
    assert list(net.layer[0].top) == ["data", "label"]
    assert net.layer[0].python_param.param_str == "{'split': 'train'}"
    assert not net.name and not net.input


def test_item_assignment_works_like_attributes():
    n = NetSpec()
    n["x"] = L.Input(shape=dict(dim=[1, 1, 2, 2]))
    n["conv1_1color"] = L.Convolution(n["x"], kernel_size=1, num_output=1)
    assert "conv1_1color" in n
    assert [lp.name for lp in n.to_proto().layer] == ["x", "conv1_1color"]


def test_unnamed_tops_get_type_and_counter():
    x = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    y = L.Convolution(x, kernel_size=1, num_output=1)
    z = L.Convolution(y, kernel_size=1, num_output=1)
    net = to_proto(z)
    assert [lp.name for lp in net.layer] == ["Input1", "Convolution1", "Convolution2"]
    assert list(net.layer[2].bottom) == ["Convolution1"]


def test_layers_without_tops_are_named_by_assignment():
    n = NetSpec()
    n.x = L.Input(shape=dict(dim=[1]))
    n.silence = L.Silence(n.x, ntop=0)
    net = n.to_proto()
    assert layer(net, "silence").type == "Silence" and not layer(net, "silence").top


def test_prototxt_round_trips():
    n = small_net()
    text = n.to_prototxt()
    back = caffe_pb2.NetParameter()
    text_format.Parse(text, back)
    assert back == n.to_proto()


def test_prototxt_reads_back_with_read_net():
    read_net = pytest.importorskip("caffe_import.io").read_net
    n = small_net()
    assert read_net(n.to_prototxt()) == n.to_proto()


@pytest.mark.parametrize("call, fragment", [
    (lambda x: L.Convolution(x, kernal_size=3), "kernal_size"),
    (lambda x: L.SoftmaxWithLoss(x, x, ignore_label=255), "ignore_label"),
    (lambda x: L.Pooling(x, pool="MAXIMUM"), "MAX, AVE, STOCHASTIC"),
    (lambda x: L.Convolution(x, bias_term=1), "true/false"),
    (lambda x: L.Convolution(x, num_output="many"), "num_output"),
    (lambda x: L.Convolution(x, convolution_param=3), "expects a dict"),
    (lambda x: L.Convolution(x, param=[1]), "expects dicts"),
    (lambda x: L.Convolution(x, name="c"), "set by the net spec"),
    (lambda x: L.ReLU(x, x, in_place=True), "in_place"),
    (lambda x: L.Convolution("data"), r"^Convolution input 0 is not a Top"),
])
def test_bad_kwargs_fail_at_the_call_naming_the_layer_type(call, fragment):
    x = L.Input(shape=dict(dim=[1, 1, 4, 4]))
    with pytest.raises(CaffeFormatError, match=fragment):
        call(x)


def test_a_top_has_one_name():
    n = NetSpec()
    n.x = L.Input(shape=dict(dim=[1]))
    with pytest.raises(CaffeFormatError, match="already named 'x'"):
        n.y = n.x


def test_only_tops_can_be_assigned():
    n = NetSpec()
    with pytest.raises(CaffeFormatError, match="expected a layer top"):
        n.x = 3


def test_a_forks_layers_write_its_fields_into_a_net_of_its_schema():
    from caffe_import.netspec import Layers, Params
    from caffe_import.proto.schema import get_schema, schema_of

    ssd = get_schema("ssd")
    assert param_field_for_type("Normalize", ssd) == "norm_param"
    assert param_field_for_type("Normalize") is None  # BVLC has no such type
    FL = Layers(ssd)
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 2, 3, 3]))  # BVLC's layer: carried over by name
    n.norm = FL.Normalize(n.data, across_spatial=False)
    net = n.to_proto()
    assert schema_of(net) is ssd and not net.layer[1].norm_param.across_spatial
    assert list(net.layer[0].input_param.shape[0].dim) == [1, 2, 3, 3]
    assert schema_of(to_proto(n.norm)) is ssd
    assert schema_of(NetSpec(schema=ssd).to_proto()) is ssd  # given, with no layers at all
    assert Params(ssd).PriorBox.CENTER_SIZE == 2
    with pytest.raises(CaffeFormatError, match="unknown keyword 'across_spatial'"):
        L.Normalize(n.data, across_spatial=False)  # BVLC's L
    bvlc_spec = NetSpec(schema=get_schema("bvlc"))
    bvlc_spec.norm = FL.Normalize(L.Input(shape=dict(dim=[1])), across_spatial=False)
    with pytest.raises(CaffeFormatError, match="'bvlc' lacks"):
        bvlc_spec.to_proto()
