"""Caffe's fillers: fan sizes as Caffe counts them, the bilinear kernel, sparse gaussian, and
the initialisation a layer gets when the net has no weights."""
from __future__ import annotations

import math

import pytest
import torch
from google.protobuf import text_format

from caffe_import.errors import CaffeFormatError
from caffe_import.layers.fillers import bilinear_kernel, fill
from caffe_import.proto import caffe_pb2
from support.layer_fixture import make


def filler(text: str):
    return text_format.Parse(text, caffe_pb2.FillerParameter())


def test_default_filler_is_constant_zero():
    t = torch.ones(3)
    fill(t, caffe_pb2.FillerParameter())
    assert torch.equal(t, torch.zeros(3))


@pytest.mark.parametrize("norm, n", [("FAN_IN", 4 * 9), ("FAN_OUT", 50 * 9),
                                     ("AVERAGE", (36 + 450) / 2)])
def test_xavier_bound_uses_caffes_fans(norm, n):
    torch.manual_seed(0)
    t = torch.empty(50, 4, 3, 3)
    fill(t, filler(f'type: "xavier" variance_norm: {norm}'))
    bound = math.sqrt(3 / n)
    assert t.abs().max().item() <= bound and t.abs().max().item() > 0.95 * bound


def test_msra_std_is_sqrt_two_over_fan_in():
    torch.manual_seed(0)
    t = torch.empty(400, 8, 3, 3)
    fill(t, filler('type: "msra"'))
    assert t.std().item() == pytest.approx(math.sqrt(2 / 72), rel=0.02)


def test_sparse_gaussian_keeps_about_sparse_over_outputs():
    torch.manual_seed(0)
    t = torch.empty(100, 1000)
    fill(t, filler('type: "gaussian" sparse: 25'))
    assert (t != 0).float().mean().item() == pytest.approx(0.25, abs=0.01)


def test_positive_unitball_rows_sum_to_one():
    t = torch.empty(5, 2, 3)
    fill(t, filler('type: "positive_unitball"'))
    torch.testing.assert_close(t.sum(dim=(1, 2)), torch.ones(5))
    assert (t >= 0).all()


def test_bilinear_kernels():
    torch.testing.assert_close(bilinear_kernel(2), torch.full((2, 2), 0.25))
    k3 = bilinear_kernel(3)  # f = 2, c = 0.5: rows 0.5, 1, 0.5
    torch.testing.assert_close(k3[1], torch.tensor([0.5, 1.0, 0.5]))
    with pytest.raises(CaffeFormatError, match="square"):
        fill(torch.empty(1, 1, 2, 3), filler('type: "bilinear"'))


def test_unknown_type_and_sparse_on_xavier_are_errors():
    with pytest.raises(CaffeFormatError, match="unknown filler type 'orthogonal'"):
        fill(torch.empty(2, 2), filler('type: "orthogonal"'), layer="fc")
    with pytest.raises(CaffeFormatError, match="sparse"):
        fill(torch.empty(2, 2), filler('type: "xavier" sparse: 1'))


def test_layers_initialise_as_caffe_without_weights():
    ip = make('name: "ip" type: "InnerProduct" bottom: "x" top: "y" inner_product_param '
              '{ num_output: 3 bias_filler { type: "constant" value: 0.2 } }', [(1, 4)])
    assert torch.equal(ip.blobs[0], torch.zeros(3, 4))  # absent weight_filler: constant 0
    assert torch.allclose(ip.blobs[1], torch.full((3,), 0.2))
    conv = make('name: "c" type: "Convolution" bottom: "x" top: "y" convolution_param '
                '{ num_output: 2 kernel_size: 1 weight_filler { type: "constant" value: 3 } }',
                [(1, 1, 2, 2)])
    with torch.no_grad():
        conv.blobs[0].zero_()
    conv.reset_parameters()
    assert torch.equal(conv.blobs[0], torch.full((2, 1, 1, 1), 3.0))
