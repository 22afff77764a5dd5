"""InnerProduct, Softmax, ArgMax, Reduction and Embed against real Caffe (layers_misc), and
the Caffe rules PyTorch does not share (ArgMax ties, MEAN as a reciprocal, Embed bounds)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_misc"


@pytest.mark.parametrize("name", layer_names(CASE, "InnerProduct", "Softmax", "ArgMax",
                                             "Reduction", "Embed"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_inner_product_layouts_and_fixed_input_size():
    ip = make('name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param '
              '{ num_output: 3 transpose: true axis: 2 weight_filler { type: "gaussian" } }',
              [(2, 4, 5, 6)])
    assert ip.blob_shapes() == [(30, 3), (3,)]
    x = torch.randn(2, 4, 5, 6)
    (y,) = ip(x)
    torch.testing.assert_close(y, x.reshape(2, 4, 30) @ ip.blobs[0] + ip.blobs[1])
    with pytest.raises(CaffeFormatError, match="built for 30"):
        ip.top_shapes([(2, 4, 5, 7)])


def test_softmax_along_an_axis():
    sm = make('name: "s" type: "Softmax" bottom: "x" top: "y" softmax_param { axis: -2 }',
              [(2, 3, 4)])
    x = torch.randn(2, 3, 4) * 50
    (y,) = sm(x)
    torch.testing.assert_close(y, torch.softmax(x, 1))


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


def test_embed_rejects_indices_outside_the_table():
    layer = make('name: "e" type: "Embed" bottom: "x" top: "y" embed_param '
                 '{ num_output: 2 input_dim: 3 weight_filler { type: "uniform" } }', [(2,)])
    assert layer.blob_shapes() == [(3, 2), (2,)]  # bias_term defaults to true
    (y,) = layer(torch.tensor([2.0, 0.0]))
    torch.testing.assert_close(y, layer.blobs[0][[2, 0]] + layer.blobs[1])
    for bad in (3.0, -1.0, 1.5):
        with pytest.raises(CaffeFormatError, match="layer 'e'"):
            layer(torch.tensor([0.0, bad]))
