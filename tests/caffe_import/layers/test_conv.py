"""Convolution and Deconvolution against real Caffe (layers_conv) and Caffe's size rules."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_conv"


@pytest.mark.parametrize("name", layer_names(CASE, "Convolution", "Deconvolution"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_blob_layouts():
    conv = make('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param '
                '{ num_output: 6 kernel_size: 3 group: 2 }', [(1, 4, 9, 9)])
    deconv = make('name: "d" type: "Deconvolution" bottom: "x" top: "y" convolution_param '
                  '{ num_output: 6 kernel_h: 2 kernel_w: 4 group: 2 bias_term: false }',
                  [(1, 4, 9, 9)])
    assert conv.blob_shapes() == [(6, 2, 3, 3), (6,)]
    assert deconv.blob_shapes() == [(4, 3, 2, 4)]


def test_truncating_output_size_keeps_a_window_pytorch_rejects():
    # in=2, k=3, s=2: (2 - 3) / 2 truncates to 0 in C++ -> one output; im2col reads a zero
    layer = make('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param '
                 '{ num_output: 1 kernel_size: 3 stride: 2 bias_term: false '
                 'weight_filler { type: "constant" value: 1 } }', [(1, 1, 2, 2)])
    x = torch.arange(4.0).reshape(1, 1, 2, 2)
    (y,) = layer(x)
    assert y.shape == (1, 1, 1, 1) and y.item() == 6.0
    assert layer.top_shapes([(1, 1, 2, 2)]) == [(1, 1, 1, 1)]


def test_axis_folds_leading_axes_into_the_batch():
    layer = make('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param '
                 '{ num_output: 2 kernel_size: 1 axis: 2 weight_filler { type: "gaussian" } }',
                 [(2, 3, 4, 5)])
    x = torch.randn(2, 3, 4, 5)
    (y,) = layer(x)
    assert y.shape == (2, 3, 2, 5)
    ref = torch.nn.functional.conv1d(x.reshape(6, 4, 5), layer.blobs[0]) \
        + layer.blobs[1].view(-1, 1)
    torch.testing.assert_close(y, ref.reshape(2, 3, 2, 5))


def test_three_spatial_axes_and_shared_weights_for_two_bottoms():
    layer = make('name: "c" type: "Convolution" bottom: "a" bottom: "b" top: "p" top: "q" '
                 'convolution_param { num_output: 2 kernel_size: 2 kernel_size: 1 kernel_size: 3 '
                 'weight_filler { type: "xavier" } }', [(1, 3, 4, 4, 4)] * 2)
    a, b = torch.randn(1, 3, 4, 4, 4), torch.randn(1, 3, 4, 4, 4)
    p, q = layer(a, b)
    assert p.shape == (1, 2, 3, 4, 2) and torch.equal(q, layer(b, b)[0])


def test_deconvolution_output_size_with_dilation():
    layer = make('name: "d" type: "Deconvolution" bottom: "x" top: "y" convolution_param '
                 '{ num_output: 2 kernel_size: 3 stride: 2 pad: 1 dilation: 2 }', [(1, 1, 5, 6)])
    # 2 (5 - 1) + 2 (3 - 1) + 1 - 2 = 11 ; 2 (6 - 1) + 4 + 1 - 2 = 13
    assert layer.top_shapes([(1, 1, 5, 6)]) == [(1, 2, 11, 13)]


def test_bilinear_filler_upsamples_like_the_fcn_release():
    layer = make('name: "up" type: "Deconvolution" bottom: "x" top: "y" convolution_param '
                 '{ num_output: 3 group: 3 kernel_size: 4 stride: 2 bias_term: false '
                 'weight_filler { type: "bilinear" } }', [(1, 3, 4, 4)])
    w = layer.blobs[0]
    assert w.shape == (3, 1, 4, 4)
    line = torch.tensor([0.25, 0.75, 0.75, 0.25])
    torch.testing.assert_close(w[1, 0], line[:, None] * line[None, :])


@pytest.mark.parametrize("params, message", [
    ("num_output: 2", "kernel_size"),
    ("num_output: 3 kernel_size: 1 group: 2", "group"),
    ("kernel_size: 1", "num_output"),
    ("num_output: 2 kernel_size: 1 kernel_h: 3 kernel_w: 3", "not both"),
    ("num_output: 2 kernel_size: 1 kernel_size: 2 kernel_size: 3", "once per spatial"),
    ("num_output: 2 kernel_size: 9", "empty"),
])
def test_bad_params_name_the_layer(params, message):
    with pytest.raises(CaffeFormatError, match=message) as err:
        layer = make(f'name: "bad" type: "Convolution" bottom: "x" top: "y" '
                     f'convolution_param {{ {params} }}', [(1, 4, 5, 5)])
        layer.top_shapes([(1, 4, 5, 5)])
    assert "layer 'bad'" in str(err.value)


def test_backward_reaches_weights_bias_and_input():
    layer = make('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param '
                 '{ num_output: 2 kernel_size: 3 weight_filler { type: "msra" } }', [(1, 2, 5, 5)])
    x = torch.randn(1, 2, 5, 5, requires_grad=True)
    layer(x)[0].sum().backward()
    assert x.grad is not None and layer.blobs[0].grad is not None
    assert torch.allclose(layer.blobs[1].grad, torch.full((2,), 9.0))
