"""The runtime model.py copies from: torch and math only, and each function equal to the layer
it stands for where the fixtures do not reach (odd pooling grids, the forks' extra cells,
interpolation sizes)."""
from __future__ import annotations

import ast
import inspect

import pytest
import torch

from caffe_import.codegen import runtime
from caffe_import.forks.deeplab.layers import caffe_interp2
from caffe_import.layers.recurrent import lstm_unit
from support.forks import build

RUNTIME_IMPORTS = {"__future__", "math", "torch", "torch.nn.functional"}


def test_the_runtime_imports_only_torch_and_math():
    tree = ast.parse(inspect.getsource(runtime))
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(a.name for a in node.names)
        elif isinstance(node, ast.ImportFrom):
            names.add(node.module)
    assert names <= RUNTIME_IMPORTS, names - RUNTIME_IMPORTS


@pytest.mark.parametrize("pool, kernel, stride, pad", [
    ("MAX", 3, 2, 0), ("MAX", 2, 3, 0), ("AVE", 3, 3, 2), ("AVE", 2, 3, 0), ("MAX", 3, 1, 2)])
@pytest.mark.parametrize("size", [(7, 9), (8, 5)])
def test_pooling_is_the_layers(pool, kernel, stride, pad, size):
    text = (f'name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param {{ pool: {pool} '
            f"kernel_size: {kernel} stride: {stride} pad: {pad} }}")
    layer = build(text, [(2, 3, *size)], fork="bvlc")
    x = torch.randn(2, 3, *size, generator=torch.Generator().manual_seed(0))
    fn = runtime.caffe_max_pool2d if pool == "MAX" else runtime.caffe_avg_pool2d
    ours = fn(x, (kernel, kernel), (stride, stride), (pad, pad))
    (theirs,) = layer(x)
    torch.testing.assert_close(ours, theirs, rtol=1e-6, atol=1e-6, equal_nan=True)


def test_the_yolo_ports_extra_cells_are_the_layers():
    layer = build('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { pool: MAX '
                  "kernel_size: 2 stride: 1 }", [(1, 2, 5, 5)], fork="yolo")
    x = torch.randn(1, 2, 5, 5)
    ours = runtime.caffe_max_pool2d(x, (2, 2), (1, 1), (0, 0), extra=layer.extra_cells((2, 2)))
    torch.testing.assert_close(ours, layer(x)[0])


def test_the_mask_is_caffes_index():
    x = torch.randn(1, 2, 6, 7)
    layer = build('name: "p" type: "Pooling" bottom: "x" top: "y" top: "m" pooling_param { '
                  "pool: MAX kernel_size: 3 stride: 2 pad: 1 }", [(1, 2, 6, 7)], fork="bvlc")
    y, mask = runtime.caffe_max_pool2d_with_mask(x, (3, 3), (2, 2), (1, 1))
    theirs = layer(x)
    torch.testing.assert_close(y, theirs[0])
    torch.testing.assert_close(mask, theirs[1])


@pytest.mark.parametrize("out", [(9, 13), (4, 4), (1, 3), (5, 7)])
def test_interp_is_deeplabs(out):
    x = torch.randn(2, 3, 5, 7)
    torch.testing.assert_close(runtime.caffe_interp(x, *out), caffe_interp2(x, *out),
                               rtol=0, atol=0)


def test_stochastic_pooling_at_test_is_the_layers():
    layer = build('name: "p" type: "Pooling" bottom: "x" top: "y" pooling_param { '
                  "pool: STOCHASTIC kernel_size: 3 stride: 2 }", [(2, 3, 7, 9)], fork="bvlc")
    x = torch.rand(2, 3, 7, 9)
    torch.testing.assert_close(runtime.caffe_stochastic_pool2d(x, (3, 3), (2, 2), False),
                               layer(x)[0])
    sampled = runtime.caffe_stochastic_pool2d(x, (3, 3), (2, 2), True)
    assert sampled.shape == (2, 3, 3, 4)


def _grad(fn, *args):
    """(value, gradient of value.sum() w.r.t. the first argument)."""
    x = args[0].clone().requires_grad_(True)
    y = fn(x, *args[1:])
    y = y[0] if isinstance(y, tuple) else y
    (g,) = torch.autograd.grad(y.sum() if y.dim() else y, [x])
    return y.detach(), g


def test_clip_passes_the_gradient_on_its_bounds_and_clips_nan_to_min():
    x = torch.tensor([-1.0, -0.5, 0.0, 0.5, 1.0, float("nan")])
    y, g = _grad(runtime.caffe_clip, x, -0.5, 0.5)
    assert y.tolist() == [-0.5, -0.5, 0.0, 0.5, 0.5, -0.5]
    assert g.tolist() == [0.0, 1.0, 1.0, 1.0, 0.0, 0.0]


def _layer(text: str, shapes):
    return build(text, shapes, fork="bvlc")


def test_swish_contrastive_and_lstm_unit_are_the_layers_forward_and_backward():
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(2, 3, 4, 5, generator=gen) * 3
    swish = _layer('name: "s" type: "Swish" bottom: "x" top: "y" swish_param { beta: 1.3 }',
                   [tuple(x.shape)])
    assert all(torch.equal(a, b) for a, b in zip(_grad(runtime.caffe_swish, x, swish.beta),
                                                 _grad(lambda t: swish(t)[0], x)))
    a, b = torch.randn(6, 4, generator=gen), torch.randn(6, 4, generator=gen)
    y = torch.tensor([1.0, 0.0, 2.7, 0.0, 0.4, 0.0])
    for legacy in (False, True):
        loss = _layer(f'name: "c" type: "ContrastiveLoss" bottom: "a" bottom: "b" bottom: "y" '
                      f'top: "l" contrastive_loss_param {{ margin: 2.5 legacy_version: '
                      f'{str(legacy).lower()} }}', [(6, 4), (6, 4), (6,)])
        ours = _grad(runtime.caffe_contrastive_loss, a, b, y, loss.margin, legacy)
        theirs = _grad(lambda t: loss(t, b, y)[0], a)
        for u, v in zip(ours, theirs):
            torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-7)
    c, gates = torch.randn(1, 5, 3, generator=gen), torch.randn(1, 5, 12, generator=gen) * 2
    cont = torch.tensor([[1.0, 0.0, 0.5, 1.0, 0.0]])
    for pick in (0, 1):
        ours = _grad(lambda t: runtime.caffe_lstm_unit(c, t, cont)[pick], gates)
        theirs = _grad(lambda t: lstm_unit(c[0], t[0], cont[0])[pick].unsqueeze(0), gates)
        for u, v in zip(ours, theirs):
            torch.testing.assert_close(u, v, rtol=1e-6, atol=1e-7)


def test_im2col_is_the_layers_in_three_spatial_axes():
    layer = _layer('name: "i" type: "Im2col" bottom: "x" top: "y" convolution_param { '
                   'kernel_size: 2 kernel_size: 3 kernel_size: 1 stride: 2 stride: 1 stride: 1 '
                   'pad: 1 pad: 0 pad: 1 dilation: 1 dilation: 2 dilation: 1 }',
                   [(2, 3, 5, 7, 4)])
    x = torch.randn(2, 3, 5, 7, 4, generator=torch.Generator().manual_seed(4))
    (theirs,) = layer(x)
    g = layer.geom
    ours = runtime.caffe_im2col(x, g.kernel, g.stride, g.pad, g.dilation,
                                tuple(theirs.shape[2:]))
    assert torch.equal(ours, theirs)


def test_with_grad_keeps_the_value_where_the_input_is_not_finite():
    x = torch.tensor([1.0, float("inf"), float("-inf"), float("nan")])
    value = torch.tensor([2.0, float("inf"), 0.0, float("nan")])
    y, g = _grad(lambda t: runtime.caffe_with_grad(value, torch.full_like(t, 3.0), t), x)
    assert torch.equal(y[:3], value[:3]) and torch.isnan(y[3])
    assert g.tolist() == [3.0, 0.0, 0.0, 0.0]
    assert runtime.caffe_swish(torch.tensor([float("inf")]), 1.0).item() == float("inf")
