"""The DeepLab v2 / PSPNet Interp against a transcription of the fork's CPU code (hszhao/PSPNet:
interp_layer.cpp, util/interp.cpp, byte-identical to deeplab-public-ver2's)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from support.forks import build

F32 = np.float32


def interp_ref(x, out_h, out_w, pad_beg=0, pad_end=0):
    """caffe_cpu_interp2<Dtype, false>, loop by loop, float32."""
    n, c, hin, win = x.shape
    h1, w1 = hin + pad_beg + pad_end, win + pad_beg + pad_end
    x = x[:, :, -pad_beg:-pad_beg + h1, -pad_beg:-pad_beg + w1]
    if (h1, w1) == (out_h, out_w):
        return x.copy()
    rh = F32(h1 - 1) / F32(out_h - 1) if out_h > 1 else F32(0)
    rw = F32(w1 - 1) / F32(out_w - 1) if out_w > 1 else F32(0)
    out = np.zeros((n, c, out_h, out_w), F32)
    for i in range(out_h):
        hr = F32(rh * F32(i))
        hl = int(hr)
        hp = 1 if hl < h1 - 1 else 0
        l1 = F32(hr - F32(hl))
        l0 = F32(1) - l1
        for j in range(out_w):
            wr = F32(rw * F32(j))
            wl = int(wr)
            wp = 1 if wl < w1 - 1 else 0
            m1 = F32(wr - F32(wl))
            m0 = F32(1) - m1
            a, b = x[:, :, hl, wl], x[:, :, hl, wl + wp]
            cc, d = x[:, :, hl + hp, wl], x[:, :, hl + hp, wl + wp]
            out[:, :, i, j] = l0 * (m0 * a + m1 * b) + l1 * (m0 * cc + m1 * d)
    return out


@pytest.mark.parametrize("fields,shape,out", [
    ("zoom_factor: 8", (1, 3, 5, 7), (33, 49)),
    ("shrink_factor: 3", (2, 2, 10, 8), (4, 3)),
    ("height: 13 width: 1", (1, 2, 6, 5), (13, 1)),
    ("zoom_factor: 2 shrink_factor: 2 pad_beg: -1 pad_end: -2", (1, 2, 11, 12), (7, 9)),
    ("height: 6 width: 5", (1, 2, 6, 5), (6, 5)),
    # the fork's if-chain: zoom or shrink alone beats height/width; height/width beats both
    ("zoom_factor: 2 height: 4 width: 4", (1, 1, 3, 5), (5, 9)),
    ("zoom_factor: 2 shrink_factor: 2 height: 4 width: 3", (1, 1, 9, 7), (4, 3)),
])
def test_interp_matches_the_fork_loop(fields, shape, out):
    layer = build(f'name: "i" type: "Interp" bottom: "x" top: "y" interp_param {{ {fields} }}',
                  [shape], fork="pspnet")
    x = np.random.default_rng(0).standard_normal(shape).astype(F32)
    (y,) = layer(torch.tensor(x))
    p = layer.param.interp_param
    ref = interp_ref(x, *out, int(p.pad_beg), int(p.pad_end))
    assert tuple(y.shape) == ref.shape == layer.top_shapes([shape])[0][:2] + out
    np.testing.assert_array_max_ulp(y.numpy(), ref, maxulp=2)


def test_interp_backward_is_the_adjoint():
    layer = build('name: "i" type: "Interp" bottom: "x" top: "y" interp_param { zoom_factor: 3 '
                  'pad_beg: -1 }', [(1, 1, 5, 4)], fork="pspnet")
    x = torch.randn(1, 1, 5, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda t: layer(t)[0], (x,))


def test_interp_refuses_positive_padding():
    from caffe_import.errors import CaffeFormatError

    with pytest.raises(CaffeFormatError, match="pad_beg"):
        build('name: "i" type: "Interp" bottom: "x" top: "y" interp_param { zoom_factor: 2 '
              'pad_beg: 1 }', [(1, 1, 4, 4)], fork="pspnet")
