"""Softmax against real Caffe (layers_misc), along any axis."""
from __future__ import annotations

import pytest
import torch

from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_misc"


@pytest.mark.parametrize("name", layer_names(CASE, "Softmax"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_softmax_along_an_axis():
    sm = make('name: "s" type: "Softmax" bottom: "x" top: "y" softmax_param { axis: -2 }',
              [(2, 3, 4)])
    x = torch.randn(2, 3, 4) * 50
    (y,) = sm(x)
    torch.testing.assert_close(y, torch.softmax(x, 1))
