"""The YOLOv2 port's darknet-order Reorg, against a transcription of the port's CPU loop (and
darknet's reorg_cpu)."""
from __future__ import annotations

import numpy as np
import torch

from caffe_import.forks.yolov2.layers import reorg_index
from support.forks import build


def reorg_ref(x, stride):
    """darknet reorg_cpu(x, w, h, c, batch, stride, forward=0, out), as the ports call it."""
    b_, c, h, w = x.shape
    flat, out = x.reshape(-1), np.empty(x.size, x.dtype)
    out_c = c // (stride * stride)
    for b in range(b_):
        for k in range(c):
            for j in range(h):
                for i in range(w):
                    in_index = i + w * (j + h * (k + c * b))
                    c2, offset = k % out_c, k // out_c
                    w2, h2 = i * stride + offset % stride, j * stride + offset // stride
                    out_index = w2 + w * stride * (h2 + h * stride * (c2 + out_c * b))
                    out[in_index] = flat[out_index]
    return out.reshape(b_, c * stride * stride, h // stride, w // stride)


def test_reorg_has_darknets_element_order_and_inverse_gradient():
    x = np.random.default_rng(0).standard_normal((2, 8, 4, 6)).astype(np.float32)
    layer = build('name: "r" type: "Reorg" bottom: "x" top: "y" reorg_param { stride: 2 }',
                  [x.shape], fork="yolov2")
    xt = torch.tensor(x, requires_grad=True)
    (y,) = layer(xt)
    np.testing.assert_array_equal(y.detach().numpy(), reorg_ref(x, 2))
    y.backward(y.detach())  # a permutation: the gradient of 0.5 |y|^2 is x
    np.testing.assert_array_equal(xt.grad.numpy(), x)


def test_reverse_reorg_inverts_reorg():
    x = torch.randn(2, 8, 4, 6)
    fwd = build('name: "r" type: "Reorg" bottom: "x" top: "y" reorg_param { stride: 2 }',
                [x.shape], fork="yolov2")
    (y,) = fwd(x)
    back = build('name: "r" type: "Reorg" bottom: "y" top: "z" reorg_param { stride: 2 '
                 'reverse: true }', [y.shape], fork="yolov2")
    assert back.top_shapes([tuple(y.shape)]) == [tuple(x.shape)]
    # reverse writes top[m(i)] = bottom[i] with m taken over its own (reorged) input
    flat = y.reshape(-1)
    m = reorg_index(*y.shape, 2)
    expect = torch.empty_like(flat)
    expect[m] = flat
    (z,) = back(y)
    assert torch.equal(z.reshape(-1), expect)
