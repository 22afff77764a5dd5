"""Autograd through the numerics layers (inputs and param blobs) equals finite differences of
their forward (float64): a net built from them trains with the gradients of the function
Caffe computes."""
from __future__ import annotations

import pytest
import torch
from torch.func import functional_call

from support.layer_fixture import make

CASES = [
    ('type: "Convolution" convolution_param { num_output: 2 kernel_size: 3 stride: 2 pad: 1 '
     'group: 2 dilation: 1 weight_filler { type: "gaussian" } bias_filler { type: "gaussian" } }',
     [(1, 2, 5, 4)]),
    ('type: "Deconvolution" convolution_param { num_output: 2 kernel_size: 3 stride: 2 '
     'weight_filler { type: "gaussian" } }', [(1, 2, 3, 3)]),
    ('type: "Pooling" pooling_param { pool: AVE kernel_size: 3 stride: 3 pad: 2 }', [(1, 2, 5, 5)]),
    ('type: "Pooling" pooling_param { pool: MAX kernel_size: 3 stride: 2 pad: 1 }', [(1, 2, 5, 5)]),
    ('type: "LRN" lrn_param { local_size: 3 alpha: 0.5 beta: 0.6 }', [(1, 4, 2, 2)]),
    ('type: "LRN" lrn_param { local_size: 3 alpha: 0.5 norm_region: WITHIN_CHANNEL }',
     [(1, 2, 3, 3)]),
    ('type: "BatchNorm" batch_norm_param { use_global_stats: false }', [(3, 2, 2, 2)]),
    ('type: "MVN" mvn_param { across_channels: true }', [(2, 3, 2, 2)]),
    ('type: "InnerProduct" inner_product_param { num_output: 3 transpose: true '
     'weight_filler { type: "xavier" } }', [(2, 2, 3)]),
    ('type: "Softmax" softmax_param { axis: 2 }', [(2, 3, 4)]),
    ('type: "Reduction" reduction_param { operation: SUMSQ axis: 1 coeff: 0.5 }', [(2, 3, 4)]),
    ('type: "Scale" scale_param { bias_term: true filler { type: "gaussian" } }', [(2, 3, 4)]),
    ('type: "Eltwise" bottom: "b" eltwise_param { operation: PROD }', [(2, 3), (2, 3)]),
    ('type: "EuclideanLoss" bottom: "b"', [(2, 3), (2, 3)]),
]


@pytest.mark.parametrize("text, shapes", CASES, ids=[c[0].split('"')[1] + str(i)
                                                     for i, c in enumerate(CASES)])
def test_gradcheck(text, shapes):
    torch.manual_seed(0)
    layer = make(f'name: "l" bottom: "a" top: "y" {text}', shapes, phase="train").double()
    inputs = [torch.randn(s, dtype=torch.float64, requires_grad=True) for s in shapes]
    names = [n for n, p in layer.named_parameters() if p.requires_grad]
    values = [layer.get_parameter(n).detach().clone().requires_grad_(True) for n in names]

    def run(*args):
        state = dict(zip(names, args[len(inputs):]))
        return functional_call(layer, state, tuple(args[:len(inputs)]))

    assert torch.autograd.gradcheck(run, inputs + values, atol=1e-6)


def test_softmax_loss_gradient_through_the_value_caffe_reports():
    layer = make('name: "l" type: "SoftmaxWithLoss" bottom: "x" bottom: "t" top: "loss" '
                 'loss_param { ignore_label: 2 normalization: FULL }', [(2, 3, 2), (2, 2)]).double()
    x = torch.randn(2, 3, 2, dtype=torch.float64, requires_grad=True)
    t = torch.tensor([[0.0, 1.0], [2.0, 1.0]], dtype=torch.float64)
    assert torch.autograd.gradcheck(lambda a: layer(a, t)[0], [x])
