"""Reduction against real Caffe (layers_misc): MEAN as a float reciprocal, axis 0 a scalar."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_misc"


@pytest.mark.parametrize("name", layer_names(CASE, "Reduction"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_reduction_mean_multiplies_by_the_float_reciprocal():
    x = torch.full((1, 7), 0.1)
    (y,) = make('name: "r" type: "Reduction" bottom: "x" top: "y" reduction_param '
                '{ operation: MEAN axis: 1 coeff: 3 }', [(1, 7)])(x)
    expected = np.float32(x.sum().item()) * (np.float32(3) / np.float32(7))
    assert y.shape == (1,) and y.item() == float(np.float32(expected))


def test_reduction_axis_zero_is_a_scalar():
    layer = make('name: "r" type: "Reduction" bottom: "x" top: "y" reduction_param '
                 '{ operation: SUMSQ }', [(2, 3)])
    (y,) = layer(torch.ones(2, 3) * 2)
    assert y.shape == () and y.item() == 24
