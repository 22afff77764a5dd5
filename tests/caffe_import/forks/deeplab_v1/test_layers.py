"""DeepLab v1's Padding and MatWrite (DeepLab-Context: padding_layer.cpp, mat_write_layer.cpp)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.forks import build


def padding_ref(x, beg, end):
    """PaddingLayer::Forward_cpu: top[n, c, h, w] = bottom[n, c, h - beg, w - beg] in range."""
    n, c, h, w = x.shape
    out = np.zeros((n, c, h + beg + end, w + beg + end), x.dtype)
    for i in range(out.shape[2]):
        for j in range(out.shape[3]):
            if 0 <= i - beg < h and 0 <= j - beg < w:
                out[:, :, i, j] = x[:, :, i - beg, j - beg]
    return out


@pytest.mark.parametrize("beg,end", [(-7, -8), (2, 1), (0, -1)])
def test_padding_pads_or_crops_like_the_fork(beg, end):
    x = np.random.default_rng(0).standard_normal((1, 2, 20, 17)).astype(np.float32)
    layer = build(f'name: "p" type: "Padding" bottom: "x" top: "y" padding_param {{ '
                  f'pad_beg: {beg} pad_end: {end} }}', [x.shape], fork="deeplab-v1")
    (y,) = layer(torch.tensor(x))
    np.testing.assert_array_equal(y.numpy(), padding_ref(x, beg, end))


def test_padding_refuses_mixed_signs_and_mat_write_writes_nothing(tmp_path):
    with pytest.raises(CaffeFormatError, match="both"):
        build('name: "p" type: "Padding" bottom: "x" top: "y" padding_param { pad_beg: 1 '
              'pad_end: -1 }', [(1, 1, 4, 4)], fork="deeplab-v1")
    sink = build(f'name: "m" type: "MatWrite" bottom: "x" mat_write_param {{ prefix: '
                 f'"{tmp_path}/out_" }}', [(1, 1, 4, 4)], fork="deeplab-v1")
    assert sink(torch.zeros(1, 1, 4, 4)) == () and not any(tmp_path.iterdir())
