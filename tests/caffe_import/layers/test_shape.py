"""Flatten, Reshape and Tile against real Caffe (the shape part of layers_misc, bit for bit)
and Caffe's axis, num_axes and copy rules."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.io import read_net
from caffe_import.net import CaffeNet
from support import case_dir
from support.layer_fixture import net_after_input, reference_arrays, run_after_input


@pytest.fixture(scope="module")
def misc_shapes():
    """layers_misc with only its Input and shape layers (the others belong to other tests)."""
    case = "layers_misc"
    param = read_net(case_dir(case) / "net.prototxt")
    keep = [layer for layer in param.layer if layer.type in ("Input", "Flatten", "Reshape", "Tile")]
    del param.layer[:]
    param.layer.extend(keep)
    net = CaffeNet(param)
    inputs, blobs = reference_arrays(case)
    return net(**inputs), blobs


@pytest.mark.parametrize("blob", ["flat", "flat_ax2", "reshape", "reshape_ax", "tile"])
def test_shape_layers_match_caffe(misc_shapes, blob):
    out, ref = misc_shapes
    assert np.array_equal(out[blob].numpy(), ref[blob])


@pytest.mark.parametrize("spec, axis, num_axes, expected", [
    ("dim: 0 dim: -1", 0, -1, (2, 60)),
    ("dim: 0 dim: 0 dim: 2 dim: -1", 0, -1, (2, 3, 2, 10)),
    ("dim: -1", 1, 2, (2, 12, 5)),
    ("dim: 1", -1, 0, (2, 3, 4, 5, 1)),      # axis -1: after the last axis
    ("dim: 1 dim: 1", 0, 0, (1, 1, 2, 3, 4, 5)),
    ("dim: 3 dim: 0", 1, 2, (2, 3, 4, 5)),   # 0 copies the bottom dim at start + i
])
def test_reshape_follows_caffes_axis_num_axes_and_copy_rules(spec, axis, num_axes, expected):
    x = torch.randn(2, 3, 4, 5)
    out = run_after_input(f'layer {{ name: "r" type: "Reshape" bottom: "data" top: "r" reshape_param '
                          f'{{ shape {{ {spec} }} axis: {axis} num_axes: {num_axes} }} }}', x)
    assert out["r"].shape == expected
    assert torch.equal(out["r"].flatten(), x.flatten())


@pytest.mark.parametrize("spec, match", [
    ("dim: -1 dim: -1", "more than one -1"),
    ("dim: 7 dim: -1", "cannot infer"),
    ("dim: 5", "changes the element count"),
])
def test_reshape_errors_name_the_layer(spec, match):
    with pytest.raises(CaffeFormatError, match=f"'r'.*{match}"):
        net_after_input(f'layer {{ name: "r" type: "Reshape" bottom: "data" top: "r" '
                        f'reshape_param {{ shape {{ {spec} }} }} }}')


def test_flatten_axis_range_and_tile_repeats_whole_blocks():
    x = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    out = run_after_input('layer { name: "f" type: "Flatten" bottom: "data" top: "f" '
                          'flatten_param { axis: 1 end_axis: -2 } }\n'
                          'layer { name: "t" type: "Tile" bottom: "data" top: "t" '
                          'tile_param { axis: 2 tiles: 2 } }', x)
    assert out["f"].shape == (2, 12, 5)
    assert torch.equal(out["t"], x.repeat(1, 1, 2, 1))
    assert math.prod(out["t"].shape) == 2 * x.numel()
