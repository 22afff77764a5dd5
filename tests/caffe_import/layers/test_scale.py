"""Scale and Bias against real Caffe (layers_norm): param shapes, operand bottoms, axes."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_norm"


@pytest.mark.parametrize("name", layer_names(CASE, "Scale", "Bias"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_scale_blob_shapes_and_orders():
    one = make('name: "s" type: "Scale" bottom: "x" top: "y" scale_param '
               '{ axis: 1 num_axes: -1 bias_term: true }', [(2, 3, 4)])
    assert one.blob_shapes() == [(3, 4), (3, 4)]
    assert torch.equal(one.blobs[0], torch.ones(3, 4))  # absent filler: constant 1
    two = make('name: "s" type: "Scale" bottom: "x" bottom: "f" top: "y" scale_param '
               '{ bias_term: true bias_filler { type: "constant" value: 0.5 } }',
               [(2, 3, 4), (3,)])
    assert two.blob_shapes() == [(3,)]
    x, f = torch.randn(2, 3, 4), torch.randn(3)
    assert torch.equal(two(x, f)[0], x * f.view(1, 3, 1) + 0.5)
    scalar = make('name: "s" type: "Scale" bottom: "x" top: "y" scale_param '
                  '{ axis: 2 num_axes: 0 filler { type: "constant" value: 3 } }', [(2, 3, 4)])
    assert scalar.blob_shapes() == [()] and torch.equal(scalar(x)[0], x * 3)


def test_scale_operand_must_match_at_axis():
    with pytest.raises(CaffeFormatError, match="does not match"):
        make('name: "s" type: "Scale" bottom: "x" bottom: "f" top: "y"', [(2, 3, 4), (4,)])
    with pytest.raises(CaffeFormatError, match="runs past"):
        make('name: "b" type: "Bias" bottom: "x" top: "y" bias_param { axis: 2 num_axes: 2 }',
             [(2, 3, 4)])


def test_bias_with_two_bottoms_adds_the_second():
    layer = make('name: "b" type: "Bias" bottom: "x" bottom: "b" top: "y" bias_param { axis: 0 }',
                 [(2, 3), (2,)])
    assert layer.blob_shapes() == []
    (y,) = layer(torch.zeros(2, 3), torch.tensor([1.0, 2.0]))
    assert y.tolist() == [[1, 1, 1], [2, 2, 2]]
