"""ReLU6 and ConvolutionDepthwise of the MobileNet ports; SENet's Axpy; DeepLab v1's ``hole``;
the forks' ``ceil_mode`` in pooling."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from support.forks import build


def test_relu6_values_and_the_ports_strict_gradient():
    layer = build('name: "r" type: "ReLU6" bottom: "x" top: "x"', [(1, 7)], fork=None)
    x = torch.tensor([[-1.0, 0.0, 0.5, 3.0, 6.0, 7.0, float("nan")]], requires_grad=True)
    (y,) = layer(x)
    assert torch.equal(y[0, :6], torch.tensor([0.0, 0.0, 0.5, 3.0, 6.0, 6.0]))
    assert torch.isnan(y[0, 6])
    y[:, :6].sum().backward()
    assert torch.equal(x.grad[0, :6], torch.tensor([0.0, 0.0, 1.0, 1.0, 0.0, 0.0]))


def test_depthwise_ignores_num_output_and_is_grouped_conv():
    layer = build('name: "dw" type: "ConvolutionDepthwise" bottom: "x" top: "y" '
                  'convolution_param { num_output: 99 kernel_size: 3 stride: 2 pad: 1 '
                  'weight_filler { type: "gaussian" std: 1 } bias_filler { type: "constant" '
                  'value: 0.5 } }', [(2, 4, 7, 6)], fork=None)
    assert layer.blob_shapes() == [(4, 1, 3, 3), (4,)]
    x = torch.randn(2, 4, 7, 6)
    (y,) = layer(x)
    ref = F.conv2d(x, layer.blobs[0].detach(), layer.blobs[1].detach(), 2, 1, groups=4)
    assert torch.allclose(y, ref, atol=1e-6) and y.shape == (2, 4, 4, 3)


def test_hole_is_dilation():
    layer = build('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { '
                  'num_output: 2 kernel_size: 3 hole: 4 weight_filler { type: "gaussian" } }',
                  [(1, 3, 12, 11)], fork="deeplab-v1")
    x = torch.randn(1, 3, 12, 11)
    (y,) = layer(x)
    assert y.shape == (1, 2, 4, 3)
    assert torch.allclose(y, F.conv2d(x, layer.blobs[0].detach(), layer.blobs[1].detach(),
                                      dilation=4), atol=1e-6)
    from caffe_import.errors import CaffeFormatError

    with pytest.raises(CaffeFormatError, match="hole"):
        build('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param { '
              'num_output: 2 kernel_size: 3 hole: 2 dilation: 2 }', [(1, 3, 9, 9)],
              fork="deeplab-v1")


def test_axpy_scales_channels_and_adds():
    layer = build('name: "a" type: "Axpy" bottom: "s" bottom: "x" bottom: "y" top: "z"',
                  [(2, 3, 1, 1), (2, 3, 4, 4), (2, 3, 4, 4)], fork=None)
    a, x, y = torch.randn(2, 3, 1, 1), torch.randn(2, 3, 4, 4), torch.randn(2, 3, 4, 4)
    (z,) = layer(a, x, y)
    assert torch.allclose(z, a * x + y)


@pytest.mark.parametrize("ceil,pad,expect", [(False, 0, (3, 3)), (True, 0, (4, 4)),
                                            (False, 1, (4, 4)), (True, 1, (5, 5))])
def test_pooling_ceil_mode_false_floors(ceil, pad, expect):
    # 8x8, kernel 3, stride 2: floor 3, ceil 4; pad 1: floor 4, ceil 5
    layer = build(f'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param {{ pool: MAX '
                  f'kernel_size: 3 stride: 2 pad: {pad} ceil_mode: {str(ceil).lower()} }}',
                  [(1, 1, 8, 8)], fork="ceil-mode")
    assert layer.top_shapes([(1, 1, 8, 8)])[0][2:] == expect
    (y,) = layer(torch.randn(1, 1, 8, 8))
    assert tuple(y.shape[2:]) == expect
