"""Eltwise against real Caffe (layers_eltwise), and Caffe's MAX tie/NaN rule and gradient."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import check_layer, layer_names, make

CASE = "layers_eltwise"


@pytest.mark.parametrize("name", layer_names(CASE, "Eltwise"))
def test_matches_caffe(name):
    check_layer(CASE, name)


def test_max_ties_and_nan_go_to_bottom_one_and_take_the_whole_gradient():
    layer = make('name: "m" type: "Eltwise" bottom: "a" bottom: "b" top: "y" '
                 'eltwise_param { operation: MAX }', [(3,), (3,)])
    a = torch.tensor([1.0, float("nan"), 5.0], requires_grad=True)
    b = torch.tensor([1.0, 2.0, 4.0], requires_grad=True)
    (y,) = layer(a, b)
    assert y.tolist() == [1.0, 2.0, 5.0]
    y.sum().backward()
    assert a.grad.tolist() == [0, 0, 1] and b.grad.tolist() == [1, 1, 0]


def test_max_later_bottoms_replace_only_when_strictly_greater():
    layer = make('name: "m" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" '
                 'eltwise_param { operation: MAX }', [(1,)] * 3)
    a, b = torch.tensor([0.0], requires_grad=True), torch.tensor([2.0], requires_grad=True)
    c = torch.tensor([2.0], requires_grad=True)
    layer(a, b, c)[0].sum().backward()
    assert (a.grad.item(), b.grad.item(), c.grad.item()) == (0, 1, 0)


def test_sum_with_coefficients_and_prod():
    x = [torch.randn(2, 3) for _ in range(3)]
    (s,) = make('name: "s" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" '
                'eltwise_param { coeff: 1 coeff: -0.5 coeff: 2 }', [(2, 3)] * 3)(*x)
    torch.testing.assert_close(s, x[0] - 0.5 * x[1] + 2 * x[2])
    (p,) = make('name: "p" type: "Eltwise" bottom: "a" bottom: "b" bottom: "c" top: "y" '
                'eltwise_param { operation: PROD }', [(2, 3)] * 3)(*x)
    assert torch.equal(p, x[0] * x[1] * x[2])


@pytest.mark.parametrize("text, shapes, message", [
    ('eltwise_param { coeff: 1 }', [(2,), (2,)], "one per bottom"),
    ('eltwise_param { operation: PROD coeff: 1 coeff: 2 }', [(2,), (2,)], "only to SUM"),
    ('', [(2, 3), (1, 3)], "no broadcasting"),
])
def test_bad_eltwise(text, shapes, message):
    with pytest.raises(CaffeFormatError, match=message):
        make(f'name: "e" type: "Eltwise" bottom: "a" bottom: "b" top: "y" {text}', shapes)
