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
