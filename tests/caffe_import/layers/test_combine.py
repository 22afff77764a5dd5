"""Concat, Slice and Split: Caffe's axes, legacy concat_dim/slice_dim, and its errors."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet
from support.layer_fixture import check_layer, layer_names, make, net_after_input, run_after_input


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


# ----------------------------------------------------------------------------- Filter
FILTER = ('name: "f" type: "Filter" bottom: "a" bottom: "b" bottom: "sel" top: "fa" top: "fb"')


def test_filter_keeps_the_selected_rows_and_zeroes_the_others_in_backward():
    layer = make(FILTER, [(5, 3), (5, 2, 2), (5, 1, 1, 1)])
    a = torch.randn(5, 3, requires_grad=True)
    b = torch.randn(5, 2, 2, requires_grad=True)
    sel = torch.tensor([0.0, 2.0, 0.0, -0.5, float("nan")]).reshape(5, 1, 1, 1)
    fa, fb = layer(a, b, sel)
    assert torch.equal(fa, a.detach()[[1, 3, 4]]) and torch.equal(fb, b.detach()[[1, 3, 4]])
    assert layer.top_shapes([(5, 3), (5, 2, 2), (5, 1, 1, 1)]) == [(5, 3), (5, 2, 2)]
    (fa.sum() * 2 + fb.sum()).backward()
    assert a.grad[:, 0].tolist() == [0.0, 2.0, 0.0, 2.0, 2.0]
    assert b.grad[:, 0, 0].tolist() == [0.0, 1.0, 0.0, 1.0, 1.0]


def test_filter_selecting_nothing_gives_empty_tops():
    layer = make('name: "f" type: "Filter" bottom: "a" bottom: "sel" top: "fa"', [(3, 2), (3,)])
    (fa,) = layer(torch.randn(3, 2), torch.zeros(3))
    assert fa.shape == (0, 2)


@pytest.mark.parametrize("text, shapes, match", [
    ('name: "f" type: "Filter" bottom: "a" bottom: "sel" top: "fa" top: "x"', [(3, 2), (3,)],
     "k tops"),
    ('name: "f" type: "Filter" bottom: "a" top: "fa"', [(3, 2)], "selector"),
    ('name: "f" type: "Filter" bottom: "a" bottom: "sel" top: "fa"', [(3, 2), (3, 2)],
     "\\(N, 1, ..., 1\\)"),
    ('name: "f" type: "Filter" bottom: "a" bottom: "sel" top: "fa"', [(4, 2), (3, 1)],
     "batch size 3"),
])
def test_filter_bad_bottoms_are_clear_errors(text, shapes, match):
    with pytest.raises(CaffeFormatError, match=match):
        make(text, shapes)


def test_filter_in_a_net_sizes_the_top_by_the_data():
    net = CaffeNet('layer { name: "in" type: "Input" top: "a" top: "sel" input_param { '
                   'shape { dim: 4 dim: 3 } shape { dim: 4 dim: 1 } } }\n'
                   'layer { name: "f" type: "Filter" bottom: "a" bottom: "sel" top: "fa" }')
    out = net(a=torch.arange(12.0).reshape(4, 3), sel=torch.tensor([[1.0], [0], [1], [0]]))
    assert out["fa"].tolist() == [[0, 1, 2], [6, 7, 8]]


# ----------------------------------------------------------------------------- BatchReindex
REINDEX = 'name: "r" type: "BatchReindex" bottom: "x" bottom: "idx" top: "y"'


def test_batch_reindex_gathers_rows_and_sums_repeats_in_backward():
    layer = make(REINDEX, [(3, 2, 2), (5,)])
    x = torch.randn(3, 2, 2, requires_grad=True)
    idx = torch.tensor([2.0, 0.0, 2.7, 1.0, 2.0])  # 2.7 truncates to 2, as static_cast<int>
    (y,) = layer(x, idx)
    assert torch.equal(y, x.detach()[[2, 0, 2, 1, 2]])
    assert layer.top_shapes([(3, 2, 2), (5,)]) == [y.shape]
    y.backward(torch.ones_like(y))
    assert x.grad[:, 0, 0].tolist() == [1.0, 1.0, 3.0]
    xd = torch.randn(3, 4, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda v: layer(v, idx.double())[0], (xd,))


@pytest.mark.parametrize("idx", [[0.0, 3.0], [-0.5, 1.0], [float("nan")]])
def test_batch_reindex_out_of_range_index_is_a_clear_error(idx):
    layer = make(REINDEX, [(3, 2), (len(idx),)])
    with pytest.raises(CaffeFormatError, match="outside \\[0, 3\\)"):
        layer(torch.randn(3, 2), torch.tensor(idx))


def test_batch_reindex_needs_1d_indices():
    with pytest.raises(CaffeFormatError, match="1-D indices"):
        make(REINDEX, [(3, 2), (2, 1)])
    with pytest.raises(CaffeFormatError, match="2 bottom"):
        make('name: "r" type: "BatchReindex" bottom: "x" top: "y"', [(3, 2)])


@pytest.mark.parametrize("name", layer_names("layers_more", "BatchReindex"))
def test_batch_reindex_matches_real_caffe(name):
    """BVLC 9b891540's BatchReindex on the bottoms it saw in layers_more (forward; the case's
    gradients are checked by the parity tests)."""
    check_layer("layers_more", name)
