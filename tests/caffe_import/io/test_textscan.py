"""Every problem of a net in one error (caffe_import/io/textscan.py): each unknown field with
its line and layer, each layer type with no implementation, and how to fix both."""
from __future__ import annotations

import pytest

from caffe_import import CaffeNet
from caffe_import.errors import CaffeFormatError
from caffe_import.io import read_net
from caffe_import.io.textscan import unknown_fields
from caffe_import.proto import caffe_pb2
from support.fork_nets import DEPLOY

NET = '''name: "n"
input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "norm" type: "Normalize" bottom: "data" top: "norm"
  norm_param { across_spatial: false scale_filler { type: "constant" value: 20 } } }
layer {
  type: "Frob"
  frob_param { x: [1, 2] y { z: 'a' "b" } }
  name: "frob" bottom: "norm" top: "frob"
}
layer { name: "c" type: "Convolution" bottom: "frob" top: "c"
  convolution_param { num_output: 2 kernel_size: 1 hole: 2 } }
'''


def test_scanner_finds_every_unknown_field_with_line_and_layer():
    found = unknown_fields(NET, caffe_pb2.NetParameter.DESCRIPTOR)
    assert [(u.line, u.name, u.message, u.layer, u.layer_type) for u in found] == [
        (4, "norm_param", "LayerParameter", "norm", "Normalize"),
        (7, "frob_param", "LayerParameter", "frob", "Frob"),
        (11, "hole", "ConvolutionParameter", "c", "Convolution"),
    ]


def test_scanner_knows_v1_layers_comments_and_repeated_messages():
    text = 'layers { name: "a" type: CONVOLUTION # comment: {\n bogus: 1 }\nlayers { name: "b" blobs_lr: 1 }'
    found = unknown_fields(text, caffe_pb2.NetParameter.DESCRIPTOR)
    assert [(u.line, u.name, u.layer) for u in found] == [(2, "bogus", "a")]


def test_read_net_with_bvlc_schema_lists_every_unknown_field_and_names_the_fork():
    with pytest.raises(CaffeFormatError) as info:
        read_net(DEPLOY / "ssd300_vgg16" / "deploy.prototxt", fork="bvlc")
    msg = str(info.value)
    assert "unknown field(s)" in msg and "fork='ssd'" in msg and "--fork ssd" in msg
    assert "layer 'conv4_3_norm' (Normalize): unknown field 'norm_param'" in msg
    # every PriorBox layer, not only the first: three in full, the rest by line
    assert msg.count("unknown field 'prior_box_param'") == 3
    assert "'prior_box_param' 3 more time(s), at lines " in msg
    assert "line " in msg


def test_one_unknown_field_keeps_line_and_column():
    with pytest.raises(CaffeFormatError) as info:
        read_net('layer { name: "a" type: "ReLU"\n  bogus_field: 3 }')
    assert info.value.line == 2 and info.value.column == 3 and "bogus_field" in str(info.value)


def test_caffenet_reports_unknown_fields_and_missing_types_in_one_error():
    with pytest.raises(CaffeFormatError) as info:
        CaffeNet(NET, fork="bvlc")
    msg = str(info.value)
    assert "3 unknown field(s)" in msg
    assert "line 4, layer 'norm' (Normalize): unknown field 'norm_param'" in msg
    assert "line 11, layer 'c' (Convolution): unknown field 'hole'" in msg
    assert "layer 'frob' (type 'Frob')" in msg
    assert '@register("' in msg and "class " in msg and "CaffeLayer" in msg
    assert "fork='ssd'" in msg  # norm_param belongs to SSD's schema


TYPO_NET = '''input: "data" input_shape { dim: 1 dim: 3 dim: 8 dim: 8 }
layer { name: "c" type: "Convolutoin" bottom: "data" top: "c"
  convolution_param { num_output: 2 kernel_size: 3 } }
layer { name: "r" type: "relu" bottom: "c" top: "c" }
'''


def test_a_misspelt_layer_type_is_named_with_the_type_it_is_close_to_and_no_recipe():
    with pytest.raises(CaffeFormatError) as info:
        CaffeNet(TYPO_NET)
    msg = str(info.value)
    assert "layer 'c' (type 'Convolutoin': did you mean 'Convolution'?)" in msg
    assert "layer 'r' (type 'relu': did you mean 'ReLU'?)" in msg
    assert "@register" not in msg  # a typo wants fixing, not a new layer class


def test_the_recipe_is_given_only_for_types_close_to_no_known_one():
    with pytest.raises(CaffeFormatError) as info:
        CaffeNet(TYPO_NET + 'layer { name: "f" type: "Frobnicate" bottom: "c" top: "f" }\n')
    msg = str(info.value)
    assert "did you mean 'Convolution'?" in msg and "layer 'f' (type 'Frobnicate')\n" in msg
    assert '@register("Frobnicate")' in msg and '@register("Convolutoin")' not in msg
