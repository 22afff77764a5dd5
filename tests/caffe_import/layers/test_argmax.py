"""ArgMax against real Caffe (layers_misc), and Caffe's tie rule PyTorch does not share."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_misc"


@pytest.mark.parametrize("name", layer_names(CASE, "ArgMax"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_argmax_ties_rank_the_larger_index_first():
    x = torch.tensor([[1.0, 3.0, 3.0, 2.0, 3.0]])
    (y,) = make('name: "a" type: "ArgMax" bottom: "x" top: "y" argmax_param '
                '{ top_k: 4 out_max_val: true }', [(1, 5)])(x)
    assert y.shape == (1, 2, 4)
    assert y[0, 0].tolist() == [4, 2, 1, 3] and y[0, 1].tolist() == [3, 3, 3, 2]
    (z,) = make('name: "a" type: "ArgMax" bottom: "x" top: "y" argmax_param { axis: 1 }',
                [(1, 5)])(x)
    assert z.tolist() == [[4.0]]


def test_argmax_top_k_beyond_the_axis_is_an_error():
    with pytest.raises(CaffeFormatError, match="top_k 4"):
        make('name: "a" type: "ArgMax" bottom: "x" top: "y" argmax_param { top_k: 4 axis: 1 }',
             [(2, 3, 5)])
