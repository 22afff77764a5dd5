"""Data layers of Caffe and its forks become net inputs of the same tops."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet

NET = """
layer {{ name: "data" type: "{type}" top: "data" top: "label" {params} }}
layer {{ name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param {{ num_output: 2 kernel_size: 3 }} }}
"""


@pytest.mark.parametrize("type_,params,data,label", [
    ("ImageData", 'image_data_param { source: "x.txt" batch_size: 2 new_height: 9 '
     'new_width: 7 }', (2, 3, 9, 7), (2,)),
    ("ImageData", 'image_data_param { source: "x.txt" batch_size: 1 is_color: false } '
     'transform_param { crop_size: 8 }', (1, 1, 8, 8), (1,)),
    ("WindowData", 'window_data_param { source: "w.txt" batch_size: 4 } '
     'transform_param { crop_size: 6 }', (4, 3, 6, 6), (4,)),
])
def test_data_layers_with_known_shapes_become_inputs(type_, params, data, label):
    net = CaffeNet(NET.format(type=type_, params=params))
    assert net.inputs == ["data", "label"]
    assert net.blob_shapes["data"] == data and net.blob_shapes["label"] == label
    x = torch.randn(data)
    out = net(data=x)
    assert out["conv"].shape[:2] == (data[0], 2) and torch.equal(out["data"], x)


def test_unknown_shapes_are_asked_for_and_taken_from_input_shapes():
    text = NET.format(type="Data", params='data_param { source: "db" batch_size: 2 } '
                      'transform_param { crop_size: 5 }')
    with pytest.raises(CaffeFormatError, match="input_shapes"):
        CaffeNet(text)
    net = CaffeNet(text, input_shapes={"data": (2, 3, 5, 5), "label": (2,)})
    assert net.blob_shapes["conv"] == (2, 2, 3, 3)


def test_shapeless_input_layer_takes_input_shapes():
    text = 'layer { name: "in" type: "Input" top: "x" }\n' + \
        'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }'
    with pytest.raises(CaffeFormatError, match="input_shapes"):
        CaffeNet(text)
    assert CaffeNet(text, input_shapes={"x": (1, 2)}).blob_shapes["y"] == (1, 2)


def test_fork_segmentation_data_layers_give_image_and_label_shapes():
    text = """
    layer { name: "data" type: "DenseImageData" top: "data" top: "label"
            dense_image_data_param { source: "t.txt" batch_size: 2 new_height: 12
                                     new_width: 16 } }
    layer { name: "c" type: "Convolution" bottom: "data" top: "c"
            convolution_param { num_output: 1 kernel_size: 1 } }"""
    net = CaffeNet(text, fork="segnet")
    assert net.blob_shapes["data"] == (2, 3, 12, 16)
    assert net.blob_shapes["label"] == (2, 1, 12, 16)
