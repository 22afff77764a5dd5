"""Crop against real Caffe (layers_crop) and Caffe's offset rules."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_crop"


@pytest.mark.parametrize("name", layer_names(CASE, "Crop"))
def test_matches_caffe_bit_for_bit(name):
    check_layer(CASE, name)


def test_one_offset_applies_to_every_cropped_axis():
    layer = make('name: "c" type: "Crop" bottom: "a" bottom: "b" top: "y" '
                 'crop_param { axis: 1 offset: 2 }', [(1, 4, 6, 6), (9, 2, 3, 3)])
    a = torch.arange(144.0).reshape(1, 4, 6, 6)
    (y,) = layer(a, torch.zeros(9, 2, 3, 3))
    assert torch.equal(y, a[:, 2:4, 2:5, 2:5])


def test_wrong_offset_count_and_too_small_data_are_errors():
    with pytest.raises(CaffeFormatError, match="offsets"):
        make('name: "c" type: "Crop" bottom: "a" bottom: "b" top: "y" '
             'crop_param { offset: 1 offset: 2 offset: 3 }', [(1, 1, 6, 6), (1, 1, 3, 3)])
    with pytest.raises(CaffeFormatError, match="cannot crop axis 3"):
        make('name: "c" type: "Crop" bottom: "a" bottom: "b" top: "y" '
             'crop_param { offset: 0 offset: 4 }', [(1, 1, 6, 6), (1, 1, 3, 3)])


def test_gradient_reaches_only_the_cropped_window():
    layer = make('name: "c" type: "Crop" bottom: "a" bottom: "b" top: "y" crop_param { offset: 1 }',
                 [(1, 1, 4, 4), (1, 1, 2, 2)])
    a = torch.zeros(1, 1, 4, 4, requires_grad=True)
    layer(a, torch.zeros(1, 1, 2, 2))[0].sum().backward()
    expected = torch.zeros(4, 4)
    expected[1:3, 1:3] = 1
    assert torch.equal(a.grad[0, 0], expected)
