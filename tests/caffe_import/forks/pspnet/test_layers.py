"""PSPNet's BN against a transcription of the fork's CPU code (hszhao/PSPNet: bn_layer.cpp), and
which BN the schema or the layer's fields pick."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from support.forks import build

F32 = np.float32

BN = 'name: "bn" type: "BN" bottom: "x" top: "y" bn_param {{ {} }}'


def _bn(fields, shape, phase="test"):
    layer = build(BN.format(fields), [shape], fork="pspnet", phase=phase)
    g = torch.Generator().manual_seed(3)
    with torch.no_grad():
        for b in layer.blobs:
            b.copy_(torch.rand(b.shape, generator=g) + 0.5)
    return layer


def test_pspnet_bn_test_phase_uses_moving_statistics():
    layer = _bn("eps: 1e-5", (2, 3, 4, 5))
    x = torch.randn(2, 3, 4, 5)
    slope, bias, mean, var = (b.detach().reshape(1, -1, 1, 1).double() for b in layer.blobs)
    ref = (x.double() - mean) * (var + F32(1e-5)) ** -0.5 * slope + bias
    (y,) = layer(x)
    assert torch.allclose(y.double(), ref, rtol=2e-6, atol=1e-6)
    assert [s.lr_mult for s in layer.param.param] == [1, 1, 0, 0]


def test_pspnet_bn_train_uses_batch_statistics_and_updates_moving_ones():
    layer = _bn("momentum: 0.9 eps: 1e-5", (2, 3, 4, 5), phase="train")
    old_mean, old_var = (b.detach().clone().reshape(-1) for b in layer.blobs[2:])
    x = torch.randn(2, 3, 4, 5, dtype=torch.float64).float()
    (y,) = layer(x)
    xd = x.double()
    mu, var = xd.mean(dim=(0, 2, 3)), xd.var(dim=(0, 2, 3), unbiased=False)
    slope, bias = (b.detach().reshape(1, -1, 1, 1).double() for b in layer.blobs[:2])
    ref = (xd - mu.view(1, -1, 1, 1)) / (var.view(1, -1, 1, 1) + 1e-5).sqrt() * slope + bias
    assert torch.allclose(y.double(), ref, rtol=1e-5, atol=1e-5)
    assert torch.allclose(layer.blobs[2].reshape(-1).double(), 0.1 * mu + 0.9 * old_mean.double(),
                          atol=1e-6)
    assert torch.allclose(layer.blobs[3].reshape(-1).double(), 0.1 * var + 0.9 * old_var.double(),
                          atol=1e-6)


def test_pspnet_bn_frozen_freezes_slope_and_bias():
    layer = _bn("frozen: true", (1, 2, 3, 3), phase="train")
    assert [s.lr_mult for s in layer.param.param] == [0, 0, 0, 0]


@pytest.mark.parametrize("fork,fields,expect", [
    ("pspnet", "", "PSPNetBN"), ("segnet", "", "SegNetBN"),
    (None, "bn_mode: INFERENCE", "SegNetBN"), (None, "frozen: true", "PSPNetBN"),
    (None, 'scale_filler { type: "constant" value: 1 }', "SegNetBN"), (None, "", "PSPNetBN"),
])
def test_bn_is_the_selected_forks_or_the_one_its_fields_name(fork, fields, expect):
    layer = build(BN.format(fields), [(1, 2, 3, 3)], fork=fork)
    assert type(layer).__name__ == expect
