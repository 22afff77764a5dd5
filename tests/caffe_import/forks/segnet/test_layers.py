"""SegNet's BN and max-unpooling Upsample against transcriptions of the fork's CPU code
(caffe-segnet-cudnn5: bn_layer.cpp, upsample_layer.cpp), and the mask our Pooling gives it."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from support.forks import build

F32 = np.float32


def test_bn_learn_mode_normalises_with_batch_statistics_and_eps_1e_9():
    layer = build('name: "bn" type: "BN" bottom: "x" top: "y" top: "m" top: "v" bn_param { '
                  'scale_filler { type: "constant" value: 2 } shift_filler { type: "constant" '
                  'value: 0.5 } }', [(2, 3, 4, 4)], fork="segnet")
    x = torch.randn(2, 3, 4, 4)
    y, m, v = layer(x)
    xd = x.double()
    mu = xd.mean(dim=(0, 2, 3))
    var = (xd * xd).mean(dim=(0, 2, 3)) - mu * mu
    ref = (xd - mu.view(1, -1, 1, 1)) / (var.view(1, -1, 1, 1) + 1e-9).sqrt() * 2 + 0.5
    assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-5)
    assert torch.allclose(m.reshape(-1).double(), mu, atol=1e-6)
    assert torch.allclose(v.reshape(-1).double(), var, atol=1e-5)
    assert layer.blob_shapes() == [(1, 3, 1, 1), (1, 3, 1, 1)]


def test_bn_inference_mode_is_scale_and_shift():
    layer = build('name: "bn" type: "BN" bottom: "x" top: "y" bn_param { bn_mode: INFERENCE }',
                  [(1, 2, 3, 3)], fork="segnet")
    with torch.no_grad():
        layer.blobs[0].copy_(torch.tensor([2.0, 3.0]).view(1, 2, 1, 1))
        layer.blobs[1].copy_(torch.tensor([1.0, -1.0]).view(1, 2, 1, 1))
    x = torch.randn(1, 2, 3, 3)
    (y,) = layer(x)
    assert torch.equal(y, x * layer.blobs[0].detach() + layer.blobs[1].detach())


def unpool_ref(x, mask, out_h, out_w):
    """UpsampleLayer::Forward_cpu: zeros, then top[mask[i]] = x[i] in raster order."""
    n, c = x.shape[:2]
    out = np.zeros((n, c, out_h * out_w), F32)
    for i in range(n):
        for j in range(c):
            for k, idx in enumerate(mask[i, j].reshape(-1)):
                out[i, j, int(idx)] = x[i, j].reshape(-1)[k]
    return out.reshape(n, c, out_h, out_w)


def _pool_and_mask(x, kernel, stride):
    pool = build(f'name: "p" type: "Pooling" bottom: "x" top: "p" top: "m" pooling_param {{ '
                 f'pool: MAX kernel_size: {kernel} stride: {stride} }}', [x.shape], fork="segnet")
    return pool(torch.tensor(x))


@pytest.mark.parametrize("kernel,stride,size,fields", [
    (2, 2, (1, 2, 8, 6), "scale: 2"),
    (3, 2, (2, 3, 9, 9), "upsample_h: 9 upsample_w: 9"),  # overlapping windows: duplicates
    (2, 2, (1, 1, 7, 7), "scale: 2 pad_out_h: true pad_out_w: true"),
])
def test_unpooling_matches_the_fork_and_inverts_our_pooling_mask(kernel, stride, size, fields):
    x = np.random.default_rng(1).standard_normal(size).astype(F32)
    pooled, mask = _pool_and_mask(x, kernel, stride)
    up = build(f'name: "u" type: "Upsample" bottom: "p" bottom: "m" top: "u" upsample_param {{ '
               f'{fields} }}', [pooled.shape, mask.shape], fork="segnet")
    out_h, out_w = up.top_shapes([pooled.shape, mask.shape])[0][2:]
    assert (out_h, out_w) == size[2:]
    p = pooled.clone().requires_grad_(True)
    (y,) = up(p, mask)
    ref = unpool_ref(pooled.numpy(), mask.numpy(), out_h, out_w)
    np.testing.assert_array_equal(y.detach().numpy(), ref)
    g = torch.randn(y.shape)
    y.backward(g)  # Backward_cpu: bottom_diff[i] = top_diff[mask[i]]
    expect = g.reshape(*g.shape[:2], -1).gather(2, mask.reshape(*mask.shape[:2], -1).long())
    assert torch.equal(p.grad, expect.reshape(p.shape))


def test_pooling_mask_takes_the_first_maximum_on_ties():
    # Caffe's MAX pooling keeps the first maximum in raster order (strict >)
    x = np.zeros((1, 1, 4, 4), F32)
    x[0, 0, 0, 1] = x[0, 0, 1, 0] = x[0, 0, 1, 1] = 5  # three tied maxima in window (0, 0)
    _, mask = _pool_and_mask(x, 2, 2)
    assert mask[0, 0, 0, 0] == 1  # h * W + w of (0, 1)
    assert mask[0, 0, 1, 1] == 10  # an all-zero window: its first cell (2, 2)


def test_unpooling_checks_the_mask_range():
    from caffe_import.errors import CaffeFormatError

    up = build('name: "u" type: "Upsample" bottom: "p" bottom: "m" top: "u" upsample_param { '
               'scale: 2 }', [(1, 1, 2, 2)] * 2, fork="segnet")
    with pytest.raises(CaffeFormatError, match="outside"):
        up(torch.zeros(1, 1, 2, 2), torch.full((1, 1, 2, 2), 16.0))
