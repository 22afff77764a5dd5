"""Concat, Slice and Split: Caffe's axes, legacy concat_dim/slice_dim, and its errors."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from support.layer_fixture import net_after_input, run_after_input


def test_concat_legacy_concat_dim_and_single_bottom():
    x = torch.randn(2, 3, 4, 5)
    out = run_after_input('layer { name: "c" type: "Concat" bottom: "data" bottom: "data" top: "c" '
                          'concat_param { concat_dim: 2 } }\n'
                          'layer { name: "one" type: "Concat" bottom: "data" top: "one" }', x)
    assert torch.equal(out["c"], torch.cat([x, x], 2))
    assert torch.equal(out["one"], x)


def test_concat_axis_and_concat_dim_together_is_an_error():
    with pytest.raises(CaffeFormatError, match="'c'.*not both"):
        net_after_input('layer { name: "c" type: "Concat" bottom: "data" bottom: "data" top: "c" '
                        'concat_param { axis: 1 concat_dim: 1 } }')


def test_slice_by_points_in_equal_parts_and_by_legacy_slice_dim():
    x = torch.randn(2, 6, 4, 5)
    out = run_after_input('layer { name: "s" type: "Slice" bottom: "data" top: "a" top: "b" top: "c" '
                          'slice_param { slice_point: 1 slice_point: 4 } }\n'
                          'layer { name: "e" type: "Slice" bottom: "data" top: "e1" top: "e2" '
                          'slice_param { axis: -2 } }\n'
                          'layer { name: "l" type: "Slice" bottom: "data" top: "l1" top: "l2" '
                          'slice_param { slice_dim: 2 } }', x)
    assert [out[k].shape[1] for k in "abc"] == [1, 3, 2]
    assert torch.equal(out["b"], x[:, 1:4])
    assert out["e1"].shape == (2, 6, 2, 5)
    assert torch.equal(out["l2"], x[:, :, 2:])


def test_slice_errors_name_the_layer():
    with pytest.raises(CaffeFormatError, match="'s'.*2 slice_point.*expected 1"):
        net_after_input('layer { name: "s" type: "Slice" bottom: "data" top: "a" top: "b" '
                        'slice_param { slice_point: 1 slice_point: 2 } }')
    with pytest.raises(CaffeFormatError, match="'s'.*length 5 into 2"):
        net_after_input('layer { name: "s" type: "Slice" bottom: "data" top: "a" top: "b" '
                        'slice_param { axis: 3 } }')


def test_split_hands_the_same_tensor_to_every_top():
    x = torch.randn(2, 3, 4, 5)
    out = run_after_input('layer { name: "s" type: "Split" bottom: "data" top: "a" top: "b" }', x)
    assert out["a"] is out["b"]
