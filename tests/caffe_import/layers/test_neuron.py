"""The neuron layers against real Caffe (layers_activations), bit for bit where the formula
allows, and the Caffe rules no fixture shows (Power's constant case, Dropout's phases, PReLU's
defaults, Threshold's strictness)."""
from __future__ import annotations

from urllib.parse import quote

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet
from support import case_dir, case_meta
from support.compare import assert_within
from support.layer_fixture import (check_layer, layer_names, make, net_after_input,
                                   reference_arrays, run_after_input)


# Layers whose Caffe formula we reproduce to the bit; the rest differ by libm's last ulp. ELU is
# not here: glibc's expf (Caffe) is not correctly rounded everywhere, and torch's vectorised exp
# differs from it in the last bit for a few inputs (torch 2.14: 1 element of the fixture).
BIT_EXACT = {"data", "relu_leaky", "prelu", "prelu_shared", "sigmoid", "absval",
             "power", "power_lin", "exp2", "log", "threshold", "dropout_test"}


@pytest.fixture(scope="module")
def activations():
    case = "layers_activations"
    net = CaffeNet(case_dir(case) / "net.prototxt", case_dir(case) / "weights.caffemodel",
                   keep_blobs=True)
    inputs, blobs = reference_arrays(case)
    return net(**inputs), blobs, case_meta(case)["tolerance"]


@pytest.mark.parametrize("blob", case_meta("layers_activations")["blobs"])
def test_activations_match_caffe(activations, blob):
    out, ref, tol = activations
    ours = out[blob].numpy()
    assert_within(ours, ref[quote(blob, safe="")], tol, blob)
    if blob in BIT_EXACT:
        assert np.array_equal(ours, ref[blob])


def test_power_with_zero_power_times_scale_is_a_constant():
    x = torch.randn(2, 3, 4, 5)
    out = run_after_input('layer { name: "p" type: "Power" bottom: "data" top: "p" '
                          'power_param { power: 3 scale: 0 shift: 2 } }', x)
    assert torch.equal(out["p"], torch.full_like(x, 8.0))
    out = run_after_input('layer { name: "p" type: "Power" bottom: "data" top: "p" '
                          'power_param { power: 0 shift: 2 } }', x)
    assert torch.equal(out["p"], torch.ones_like(x))


def test_dropout_scales_kept_values_at_train_and_is_identity_at_test():
    x = torch.ones(4, 3, 8, 8)
    layer = 'layer { name: "d" type: "Dropout" bottom: "data" top: "d" ' \
            'dropout_param { dropout_ratio: 0.2 } }'
    scale = float(np.float32(1.0 / (1.0 - float(np.float32(0.2)))))
    train = run_after_input(layer, x, phase="train")["d"]
    assert set(train.unique().tolist()) <= {0.0, scale}
    assert 0.6 < (train != 0).float().mean() < 0.95
    assert torch.equal(run_after_input(layer, x)["d"], x)


def test_prelu_defaults_to_a_constant_quarter_and_shared_is_a_scalar():
    net = net_after_input('layer { name: "p" type: "PReLU" bottom: "data" top: "p" }\n'
                          'layer { name: "q" type: "PReLU" bottom: "data" top: "q" '
                          'prelu_param { channel_shared: true } }')
    assert net.params["p"][0].tolist() == [0.25] * 3
    assert net.params["q"][0].shape == ()


def test_threshold_is_strict_and_relu_slope_applies_below_zero():
    x = torch.tensor([[-1.0, 0.0, 0.3, 0.5]])
    out = run_after_input('layer { name: "t" type: "Threshold" bottom: "data" top: "t" '
                          'threshold_param { threshold: 0.3 } }\n'
                          'layer { name: "r" type: "ReLU" bottom: "data" top: "r" '
                          'relu_param { negative_slope: 0.5 } }', x)
    assert out["t"].tolist() == [[0.0, 0.0, 0.0, 1.0]]
    assert torch.equal(out["r"], torch.tensor([[-0.5, 0.0, 0.3, 0.5]]))


# ----------------------------------------------------------------------- Swish and Clip
def test_swish_is_x_times_caffes_sigmoid_of_beta_x_with_caffes_gradient():
    torch.manual_seed(0)
    layer = make('name: "s" type: "Swish" bottom: "x" top: "y" swish_param { beta: 1.7 }',
                 [(2, 3, 4, 5)])
    x = torch.randn(2, 3, 4, 5, requires_grad=True)
    (y,) = layer(x)
    beta = np.float32(1.7)
    bx = (x.detach().numpy() * beta).astype(np.float64)
    s = (0.5 * np.tanh(0.5 * bx) + 0.5).astype(np.float32)
    assert np.array_equal(y.detach().numpy(), x.detach().numpy() * s)
    dy = torch.randn_like(y)
    y.backward(dy)
    by = (y.detach().numpy() * beta).astype(np.float64)
    expected = (dy.numpy().astype(np.float64) * (by + s.astype(np.float64) * (1.0 - by)))
    assert np.array_equal(x.grad.numpy(), expected.astype(np.float32))
    xd = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: layer(v)[0], (xd,))


def test_swish_default_beta_is_one():
    layer = make('name: "s" type: "Swish" bottom: "x" top: "y"', [(2, 3)])
    x = torch.randn(2, 3)
    torch.testing.assert_close(layer(x)[0], x * torch.sigmoid(x))


def test_clip_clamps_and_passes_the_gradient_on_the_bounds():
    layer = make('name: "c" type: "Clip" bottom: "x" top: "y" clip_param { min: -0.5 max: 0.25 }',
                 [(6,)])
    x = torch.tensor([-1.0, -0.5, 0.0, 0.25, 0.3, float("nan")], requires_grad=True)
    (y,) = layer(x)
    assert y.tolist() == [-0.5, -0.5, 0.0, 0.25, 0.25, -0.5]  # NaN: std::max(min, NaN) = min
    y.backward(torch.full((6,), 2.0))
    assert x.grad.tolist() == [0.0, 2.0, 2.0, 2.0, 0.0, 0.0]


def test_clip_needs_min_and_max():
    with pytest.raises(CaffeFormatError, match="max not given"):
        make('name: "c" type: "Clip" bottom: "x" top: "y" clip_param { min: 0 }', [(2,)])
    with pytest.raises(CaffeFormatError, match="1 bottom and 1 top"):
        make('name: "c" type: "Clip" bottom: "x" bottom: "z" top: "y" '
             'clip_param { min: 0 max: 1 }', [(2,), (2,)])


@pytest.mark.parametrize("name", layer_names("layers_more", "Swish", "Clip"))
def test_swish_and_clip_matches_real_caffe(name):
    """BVLC 9b891540's Swish and Clip on the bottoms it saw in layers_more (forward; the case's
    gradients are checked by the parity tests)."""
    check_layer("layers_more", name)
