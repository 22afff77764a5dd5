"""Legacy nets and solvers upgrade to the current form exactly as Caffe upgrades them."""
from __future__ import annotations

import pytest
from support import case_dir
from google.protobuf import text_format

from caffe_import import CaffeFormatError, read_net, read_solver
from caffe_import.proto import caffe_pb2


def parse(text: str) -> caffe_pb2.NetParameter:
    return text_format.Parse(text, caffe_pb2.NetParameter())


V1_NET = """
name: "v1"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 8 input_dim: 8
layers { name: "conv" type: CONVOLUTION bottom: "data" top: "conv"
         blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0
         convolution_param { num_output: 4 kernel_size: 3 } }
layers { name: "relu" type: RELU bottom: "conv" top: "conv" }
layers { name: "fc" type: INNER_PRODUCT bottom: "conv" top: "fc" param: "shared"
         blob_share_mode: PERMISSIVE inner_product_param { num_output: 2 } }
layers { name: "loss" type: SOFTMAX_LOSS bottom: "fc" bottom: "label" top: "loss"
         loss_weight: 2 include { phase: TRAIN } }
"""

V2_NET = """
name: "v1"
layer { name: "input" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 4 kernel_size: 3 } }
layer { name: "relu" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "fc" type: "InnerProduct" bottom: "conv" top: "fc"
        param { name: "shared" share_mode: PERMISSIVE } inner_product_param { num_output: 2 } }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "fc" bottom: "label" top: "loss"
        loss_weight: 2 include { phase: TRAIN } }
"""


def test_v1_net_equals_its_v2_form():
    assert read_net(V1_NET) == parse(V2_NET)


def test_v1_fixture_matches_its_v2_form_layer_by_layer():
    path = case_dir("format_v1_vgg16_classifier") / "net.prototxt"
    v1 = text_format.Parse(path.read_text(), caffe_pb2.NetParameter())
    net = read_net(path)
    assert net.layer[0].type == "Input" and net.layer[0].name == "input"
    assert list(net.layer[0].top) == list(v1.input)
    assert list(net.layer[0].input_param.shape[0].dim) == list(v1.input_dim[:4])
    assert len(net.layer) == len(v1.layers) + 1
    enum_name = caffe_pb2.V1LayerParameter.LayerType.Name
    expected_type = {"CONVOLUTION": "Convolution", "RELU": "ReLU", "POOLING": "Pooling",
                     "INNER_PRODUCT": "InnerProduct", "DROPOUT": "Dropout",
                     "SOFTMAX": "Softmax"}
    for old, new in zip(v1.layers, net.layer[1:]):
        assert new.name == old.name and list(new.bottom) == list(old.bottom)
        assert list(new.top) == list(old.top)
        assert new.type == expected_type[enum_name(old.type)]
        assert [p.lr_mult for p in new.param][:len(old.blobs_lr)] == list(old.blobs_lr)
        assert [p.decay_mult for p in new.param][:len(old.weight_decay)] == list(old.weight_decay)
        for field in ("convolution_param", "pooling_param", "inner_product_param",
                      "dropout_param"):
            assert getattr(new, field) == getattr(old, field)


V0_NET = """
name: "v0"
input: "data"
input_dim: 1 input_dim: 3 input_dim: 10 input_dim: 10
layers { layer { name: "pad1" type: "padding" pad: 2 } bottom: "data" top: "pad1" }
layers { layer { name: "conv1" type: "conv" num_output: 8 kernelsize: 5 stride: 2 group: 1
                 biasterm: false weight_filler { type: "gaussian" std: 0.01 }
                 blobs_lr: 1 blobs_lr: 2 weight_decay: 1 weight_decay: 0 }
         bottom: "pad1" top: "conv1" }
layers { layer { name: "pool1" type: "pool" pool: AVE kernelsize: 3 stride: 2 }
         bottom: "conv1" top: "pool1" }
layers { layer { name: "norm1" type: "lrn" local_size: 5 alpha: 0.0001 beta: 0.75 }
         bottom: "pool1" top: "norm1" }
layers { layer { name: "drop" type: "dropout" dropout_ratio: 0.3 } bottom: "norm1" top: "norm1" }
layers { layer { name: "fc" type: "innerproduct" num_output: 3 } bottom: "norm1" top: "fc" }
"""

V0_AS_V2 = """
name: "v0"
layer { name: "input" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 10 dim: 10 } } }
layer { name: "conv1" type: "Convolution" bottom: "data" top: "conv1"
        param { lr_mult: 1 decay_mult: 1 } param { lr_mult: 2 decay_mult: 0 }
        convolution_param { num_output: 8 bias_term: false pad: 2 kernel_size: 5 group: 1
                            stride: 2 weight_filler { type: "gaussian" std: 0.01 } } }
layer { name: "pool1" type: "Pooling" bottom: "conv1" top: "pool1"
        pooling_param { pool: AVE kernel_size: 3 stride: 2 } }
layer { name: "norm1" type: "LRN" bottom: "pool1" top: "norm1"
        lrn_param { local_size: 5 alpha: 0.0001 beta: 0.75 } }
layer { name: "drop" type: "Dropout" bottom: "norm1" top: "norm1"
        dropout_param { dropout_ratio: 0.3 } }
layer { name: "fc" type: "InnerProduct" bottom: "norm1" top: "fc"
        inner_product_param { num_output: 3 } }
"""


def test_v0_net_folds_padding_and_moves_fields():
    assert read_net(V0_NET) == parse(V0_AS_V2)


def test_v0_data_layer_fields_go_to_data_and_transform_params():
    net = read_net("""layers { layer { name: "d" type: "data" source: "db" batchsize: 16
                     meanfile: "m.binaryproto" cropsize: 227 mirror: true scale: 0.5 }
                     top: "data" top: "label" }""")
    layer = net.layer[0]
    assert layer.type == "Data"
    assert layer.data_param.source == "db" and layer.data_param.batch_size == 16
    t = layer.transform_param
    assert (t.mean_file, t.crop_size, t.mirror, t.scale) == ("m.binaryproto", 227, True, 0.5)


def test_v1_data_transformation_fields_move_to_transform_param():
    net = read_net("""layers { name: "d" type: DATA top: "data"
                     data_param { source: "db" scale: 0.25 crop_size: 5 mirror: true } }""")
    layer = net.layer[0]
    assert not layer.data_param.HasField("scale") and not layer.data_param.HasField("crop_size")
    assert layer.transform_param.scale == 0.25 and layer.transform_param.crop_size == 5
    assert layer.transform_param.mirror


def test_unknown_v0_type_is_an_error():
    with pytest.raises(CaffeFormatError, match="unknown V0 layer type 'bogus'"):
        read_net('layers { layer { name: "x" type: "bogus" } }')


def test_padding_into_a_non_conv_layer_is_an_error():
    with pytest.raises(CaffeFormatError, match="padding"):
        read_net('input: "data" layers { layer { name: "p" type: "padding" pad: 1 } '
                 'bottom: "data" top: "p" } layers { layer { name: "r" type: "relu" } '
                 'bottom: "p" top: "r" }')


def test_layer_and_layers_together_are_refused():
    with pytest.raises(CaffeFormatError, match="both 'layer'"):
        read_net('layer { name: "a" type: "ReLU" } layers { name: "b" type: RELU }')


def test_input_shape_becomes_an_input_layer_in_front():
    net = read_net('input: "a" input_shape { dim: 2 dim: 3 } input: "b" '
                   'input_shape { dim: 4 } layer { name: "r" type: "ReLU" bottom: "a" top: "r" }')
    assert [l.name for l in net.layer] == ["input", "r"]
    assert list(net.layer[0].top) == ["a", "b"]
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[2, 3], [4]]


def test_input_names_without_shapes_are_dropped():
    net = read_net('input: "a" layer { name: "r" type: "ReLU" bottom: "a" top: "r" }')
    assert [l.name for l in net.layer] == ["r"] and len(net.input) == 0


def test_too_few_input_dims_is_an_error():
    with pytest.raises(CaffeFormatError, match="input_dim"):
        read_net('input: "a" input: "b" input_dim: 1 input_dim: 1 input_dim: 1 input_dim: 1')


def test_batchnorm_with_three_param_specs_is_frozen():
    net = read_net('layer { name: "bn" type: "BatchNorm" param { lr_mult: 1 } '
                   'param { lr_mult: 1 decay_mult: 3 } param { lr_mult: 1 name: "x" } }')
    assert [(p.lr_mult, p.decay_mult) for p in net.layer[0].param] == [(0, 0)] * 3
    assert net.layer[0].param[2].name == "x"


def test_solver_type_enum_becomes_string():
    assert read_solver("base_lr: 0.1 solver_type: ADAM").type == "Adam"
    assert read_solver("base_lr: 0.1 solver_type: NESTEROV").type == "Nesterov"
    assert not read_solver("solver_type: SGD").HasField("solver_type")


def test_solver_type_and_solver_type_enum_together_are_refused():
    with pytest.raises(CaffeFormatError, match="solver_type"):
        read_solver('solver_type: SGD type: "Adam"')


def test_snapshot_prefix_naming_a_directory_gets_the_file_stem(tmp_path):
    (tmp_path / "snaps").mkdir()
    path = tmp_path / "solver.prototxt"
    path.write_text(f'base_lr: 0.1 snapshot_prefix: "{tmp_path / "snaps"}"')
    assert read_solver(path).snapshot_prefix == str(tmp_path / "snaps" / "solver")


def test_syntax_error_names_file_line_and_column(tmp_path):
    path = tmp_path / "bad.prototxt"
    path.write_text('name: "x"\nlayer {\n  name: "a"\n  type: "ReLU"\n  bogus_field: 3\n}\n')
    with pytest.raises(CaffeFormatError) as info:
        read_net(path)
    err = info.value
    assert err.path == str(path) and err.line == 5 and err.column == 3
    assert str(path) in str(err) and "line 5" in str(err) and "bogus_field" in str(err)


def test_unbalanced_braces_are_a_syntax_error():
    with pytest.raises(CaffeFormatError, match="line 1"):
        read_net('layer { name: "a" ')


def test_binary_file_given_as_net_is_refused():
    with pytest.raises(CaffeFormatError, match="binary"):
        read_net(case_dir("voc_fcn32s_narrow") / "weights.caffemodel")


def test_a_missing_file_name_is_not_parsed_as_text(tmp_path):
    with pytest.raises(FileNotFoundError):
        read_net(str(tmp_path / "missing.prototxt"))
    assert len(read_net("").layer) == 0  # empty text is an empty net, as protobuf parses it
