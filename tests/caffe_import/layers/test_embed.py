"""Embed against real Caffe (layers_misc), and its bounds on the indices."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_misc"


@pytest.mark.parametrize("name", layer_names(CASE, "Embed"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_embed_rejects_indices_outside_the_table():
    layer = make('name: "e" type: "Embed" bottom: "x" top: "y" embed_param '
                 '{ num_output: 2 input_dim: 3 weight_filler { type: "uniform" } }', [(2,)])
    assert layer.blob_shapes() == [(3, 2), (2,)]  # bias_term defaults to true
    (y,) = layer(torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(y, layer.blobs[0][[2, 0]] + layer.blobs[1])
    for bad in (3.0, -1.0, 1.5):
        with pytest.raises(CaffeFormatError, match="layer 'e'"):
            layer(torch.tensor([0.0, bad]))
