"""Silence and Parameter: tops, blobs, and the values a caffemodel gives a Parameter layer."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet
from support.layer_fixture import check_layer, layer_names, make

PARAM_NET = """
layer { name: "p" type: "Parameter" top: "w" parameter_param { shape { dim: 2 dim: 3 } } }
layer { name: "x" type: "Input" top: "x" input_param { shape { dim: 2 dim: 3 } } }
layer { name: "prod" type: "Eltwise" bottom: "w" bottom: "x" top: "y"
        eltwise_param { operation: PROD } }
"""


def test_parameter_top_is_its_blob_and_the_blob_learns():
    layer = make('name: "p" type: "Parameter" top: "w" parameter_param { shape { dim: 2 '
                 'dim: 3 } }', [])
    assert layer.blob_shapes() == [(2, 3)] and layer.top_shapes([]) == [(2, 3)]
    assert torch.equal(layer.blobs[0], torch.zeros(2, 3))  # no filler: zeros until loaded
    with torch.no_grad():
        layer.blobs[0].copy_(torch.arange(6.0).reshape(2, 3))
    (w,) = layer()
    assert torch.equal(w, torch.arange(6.0).reshape(2, 3))
    (w * 3).sum().backward()
    assert torch.equal(layer.blobs[0].grad, torch.full((2, 3), 3.0))


def test_parameter_values_come_from_the_weights(tmp_path):
    weights = {"p": [np.arange(6, dtype=np.float32).reshape(2, 3)]}
    net = CaffeNet(PARAM_NET, weights=weights)
    out = net(x=torch.full((2, 3), 2.0))
    assert out["y"].tolist() == [[0, 2, 4], [6, 8, 10]]
    net.save_weights(tmp_path / "p.caffemodel")
    again = CaffeNet(PARAM_NET, weights=str(tmp_path / "p.caffemodel"))
    assert torch.equal(again.params["p"][0], torch.from_numpy(weights["p"][0]))


def test_parameter_without_shape_is_one_value_and_takes_no_bottoms():
    layer = make('name: "p" type: "Parameter" top: "w"', [])
    assert layer.blob_shapes() == [()]
    with pytest.raises(CaffeFormatError, match="0 bottom"):
        make('name: "p" type: "Parameter" bottom: "x" top: "w"', [(2,)])


@pytest.mark.parametrize("name", layer_names("layers_more", "Parameter"))
def test_parameter_matches_real_caffe(name):
    """BVLC 9b891540's Parameter on the bottoms it saw in layers_more (forward; the case's
    gradients are checked by the parity tests)."""
    check_layer("layers_more", name)
