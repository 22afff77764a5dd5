"""Convolution and Deconvolution against real Caffe (layers_conv) and Caffe's size rules."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

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


# ----------------------------------------------------------------------------- Im2col
def _im2col_nd(x: np.ndarray, kernel, stride, pad, dilation) -> np.ndarray:
    """Caffe's im2col_nd_cpu for one (C, *spatial) image, loops as written there."""
    c, spatial = x.shape[0], x.shape[1:]
    out = [int((s + 2 * p - (d * (k - 1) + 1)) / st) + 1  # C++ truncates toward zero
           for s, k, st, p, d in zip(spatial, kernel, stride, pad, dilation)]
    cols = np.zeros((c * int(np.prod(kernel)), *out), np.float32)
    for row in range(cols.shape[0]):
        ch, rest = divmod(row, int(np.prod(kernel)))
        offsets = np.unravel_index(rest, kernel)
        for pos in np.ndindex(*out):
            src = [o * st - p + off * d for o, st, p, off, d in
                   zip(pos, stride, pad, offsets, dilation)]
            if all(0 <= v < s for v, s in zip(src, spatial)):
                cols[(row, *pos)] = x[(ch, *src)]
    return cols


def test_im2col_is_unfold_in_caffes_layout():
    x = torch.randn(2, 3, 7, 8)
    layer = make('name: "i" type: "Im2col" bottom: "x" top: "y" convolution_param { '
                 'kernel_h: 3 kernel_w: 2 stride_h: 2 stride_w: 1 pad_h: 1 pad_w: 0 '
                 'dilation: 2 }', [tuple(x.shape)])
    (y,) = layer(x)
    ref = F.unfold(x, (3, 2), dilation=2, padding=(1, 0), stride=(2, 1))
    assert y.shape == (2, 18, 3, 6) == layer.top_shapes([tuple(x.shape)])[0]
    assert torch.equal(y.reshape(2, 18, -1), ref)


@pytest.mark.parametrize("spatial, settings", [
    ((5, 4, 6), "kernel_size: 2 kernel_size: 3 kernel_size: 2 stride: 2 pad: 1 dilation: 1"),
    ((9,), "kernel_size: 3 stride: 2 pad: 2 dilation: 3"),
    ((3, 3), "kernel_size: 4 stride: 3 pad: 0"),  # Caffe truncates -1 / 3 to 0: one window
])
def test_im2col_nd_matches_caffes_loops(spatial, settings):
    x = torch.randn(2, 3, *spatial)
    layer = make(f'name: "i" type: "Im2col" bottom: "x" top: "y" convolution_param {{ '
                 f'{settings} force_nd_im2col: true }}', [tuple(x.shape)])
    (y,) = layer(x)
    g = layer.geom
    for n in range(2):
        assert np.array_equal(y[n].numpy(), _im2col_nd(x[n].numpy(), g.kernel, g.stride, g.pad,
                                                       g.dilation))


def test_im2col_folds_the_axes_before_axis_and_its_gradient_is_col2im():
    x = torch.randn(2, 2, 3, 5, 4, dtype=torch.float64, requires_grad=True)
    layer = make('name: "i" type: "Im2col" bottom: "x" top: "y" convolution_param { '
                 'kernel_size: 3 pad: 1 stride: 2 axis: 2 }', [tuple(x.shape)])
    assert layer(x)[0].shape == (2, 2, 27, 3, 2)
    assert torch.autograd.gradcheck(lambda v: layer(v)[0], (x,))
    ones = torch.ones(1, 1, 4, 4, requires_grad=True)
    layer = make('name: "i" type: "Im2col" bottom: "x" top: "y" convolution_param { '
                 'kernel_size: 3 pad: 1 }', [(1, 1, 4, 4)])
    layer(ones)[0].sum().backward()
    assert ones.grad[0, 0].tolist() == [[4, 6, 6, 4], [6, 9, 9, 6], [6, 9, 9, 6], [4, 6, 6, 4]]


def test_im2col_bad_settings_are_clear_errors():
    with pytest.raises(CaffeFormatError, match="kernel_size"):
        make('name: "i" type: "Im2col" bottom: "x" top: "y"', [(1, 2, 5, 5)])
    with pytest.raises(CaffeFormatError, match="empty"):
        make('name: "i" type: "Im2col" bottom: "x" top: "y" convolution_param { '
             'kernel_size: 7 }', [(1, 2, 5, 5)])
    with pytest.raises(CaffeFormatError, match="1 bottom"):
        make('name: "i" type: "Im2col" bottom: "x" bottom: "z" top: "y" convolution_param { '
             'kernel_size: 2 }', [(1, 2, 5, 5), (1, 2, 5, 5)])


@pytest.mark.parametrize("name", layer_names("layers_more", "Im2col"))
def test_im2col_matches_real_caffe(name):
    """BVLC 9b891540's Im2col on the bottoms it saw in layers_more (forward; the case's
    gradients are checked by the parity tests)."""
    check_layer("layers_more", name)
