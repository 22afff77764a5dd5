"""Coordinate maps of single layers, their composition, and the crop offsets they give."""
from __future__ import annotations

from fractions import Fraction as F

import pytest
from hypothesis import given, strategies as st

from caffe_import.errors import CaffeFormatError
from caffe_import.proto import caffe_pb2
from caffe_import.coord_map import (CoordMap, UndefinedMap, compose, coord_map,
                                coord_map_from_to, crop, crop_offsets, inverse)
from caffe_import.netspec import L, NetSpec, P


def one_layer(type_name: str, **kw) -> caffe_pb2.LayerParameter:
    x = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    top = getattr(L, type_name)(x, **kw)
    return top.fn.param_with_type()


def ab(m: CoordMap) -> tuple:
    return m.axis, m.a, m.b


@pytest.mark.parametrize("kind, kw, expected", [
    # x_top = a x_bottom + b on receptive-field centres
    ("Convolution", dict(kernel_size=3, pad=1, num_output=1), (1, (F(1),), (F(0),))),
    ("Convolution", dict(kernel_size=3, pad=0, num_output=1), (1, (F(1),), (F(-1),))),
    ("Convolution", dict(kernel_size=7, stride=1, pad=0, num_output=1), (1, (F(1),), (F(-3),))),
    ("Convolution", dict(kernel_size=3, pad=100, num_output=1), (1, (F(1),), (F(99),))),
    ("Convolution", dict(kernel_size=11, stride=4, pad=100, num_output=1), (1, (F(1, 4),), (F(95, 4),))),
    ("Convolution", dict(kernel_size=3, dilation=2, pad=2, num_output=1), (1, (F(1),), (F(0),))),
    ("Pooling", dict(pool=P.Pooling.MAX, kernel_size=2, stride=2), (1, (F(1, 2),), (F(-1, 4),))),
    ("Pooling", dict(pool=P.Pooling.MAX, kernel_size=3, stride=2), (1, (F(1, 2),), (F(-1, 2),))),
    ("Deconvolution", dict(kernel_size=4, stride=2, num_output=1), (1, (F(2),), (F(3, 2),))),
    ("Deconvolution", dict(kernel_size=64, stride=32, num_output=1), (1, (F(32),), (F(63, 2),))),
    ("ReLU", {}, (None, (F(1),), (F(0),))),
    ("Dropout", dict(dropout_ratio=0.5), (None, (F(1),), (F(0),))),
    ("LRN", dict(local_size=5), (None, (F(1),), (F(0),))),
])
def test_single_layer_maps(kind, kw, expected):
    assert ab(coord_map(one_layer(kind, **kw))) == expected


def test_crop_maps_on_the_axis_before_its_crop_axis():
    x = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    c = L.Crop(x, x, crop_param=dict(axis=2, offset=[5]))
    assert ab(coord_map(c.fn.param_with_type())) == (1, (F(1),), (F(-5),))


def test_per_dimension_kernels_give_per_dimension_maps():
    m = coord_map(one_layer("Convolution", kernel_h=3, kernel_w=5, num_output=1))
    assert m.a == (F(1),) and m.b == (F(-1), F(-2))


@pytest.mark.parametrize("kind, kw", [
    ("InnerProduct", dict(num_output=2)), ("Concat", {}), ("Softmax", {}),
    ("Pooling", dict(global_pooling=True)),
])
def test_layers_without_a_map_stop_the_walk(kind, kw):
    with pytest.raises(UndefinedMap):
        coord_map(one_layer(kind, **kw))


fractions = st.fractions(min_value=-50, max_value=50, max_denominator=64)
nonzero = fractions.filter(lambda f: f != 0)


@given(nonzero, fractions, nonzero, fractions, fractions)
def test_compose_applies_inner_then_outer_and_inverse_undoes(a1, b1, a2, b2, x):
    outer, inner = CoordMap(1, (a1,), (b1,)), CoordMap(1, (a2,), (b2,))
    m = compose(outer, inner)
    assert m.a[0] * x + m.b[0] == a1 * (a2 * x + b2) + b1
    ident = compose(inverse(m), m)
    assert ident.a == (F(1),) and ident.b == (F(0),)


def test_axes_must_agree_but_pointwise_fits_any():
    assert compose(CoordMap.identity(), CoordMap(3, (F(1),), (F(0),))).axis == 3
    with pytest.raises(CaffeFormatError, match="different axes"):
        compose(CoordMap(1, (F(1),), (F(0),)), CoordMap(2, (F(1),), (F(0),)))


def worked_example():
    """data -> conv(k3, p1) -> relu (in place) -> pool(k2, s2) -> deconv(k4, s2)."""
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 16, 16]))
    n.conv = L.Convolution(n.data, kernel_size=3, pad=1, num_output=1)
    n.relu = L.ReLU(n.conv, in_place=True)
    n.pool = L.Pooling(n.relu, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.up = L.Deconvolution(n.pool, convolution_param=dict(num_output=1, kernel_size=4, stride=2))
    return n


def test_worked_example_crops_the_deconvolution_by_one():
    n = worked_example()
    assert ab(coord_map_from_to(n.up, n.data)) == (1, (F(1),), (F(-1),))
    n.score = crop(n.up, n.data)
    lp = n.to_proto().layer[-1]
    assert lp.type == "Crop" and list(lp.bottom) == ["up", "data"]
    assert lp.crop_param.axis == 2 and list(lp.crop_param.offset) == [1]


def test_crop_through_an_eltwise_fusion():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 32, 32]))
    n.pool = L.Pooling(n.data, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.a = L.Convolution(n.pool, kernel_size=1, num_output=1)
    n.b = L.Convolution(n.pool, kernel_size=3, num_output=1)  # no pad: shifted by one
    n.bc = crop(n.a, n.b)
    assert list(n.bc.fn.param.crop_param.offset) == [1]
    n.fuse = L.Eltwise(n.b, n.bc, operation=P.Eltwise.SUM)
    # 32 -> pool 16 -> b 14 -> up (14 - 1) * 2 + 8 = 34: one too many on each side
    n.up = L.Deconvolution(n.fuse, convolution_param=dict(num_output=1, kernel_size=8, stride=2))
    assert crop_offsets(n.up, n.data) == (2, (1,))


def test_scale_mismatch_names_both_blobs():
    n = worked_example()
    with pytest.raises(CaffeFormatError, match=r"crop\(pool, data\).*different scales"):
        crop(n.pool, n.data)


def test_negative_offset_is_an_error():
    n = worked_example()
    n.small = L.Convolution(n.data, kernel_size=5, num_output=1)  # 2 smaller at each side
    with pytest.raises(CaffeFormatError, match=r"crop\(small, data\).*padding"):
        crop(n.small, n.data)


def test_non_integral_offset_is_an_error():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    n.even = L.Convolution(n.data, kernel_size=2, num_output=1)
    with pytest.raises(CaffeFormatError, match=r"crop\(data, even\).*not an integer"):
        crop(n.data, n.even)


def test_blobs_without_a_common_ancestor():
    n = NetSpec()
    n.a = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    n.b = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    with pytest.raises(CaffeFormatError, match=r"crop\(a, b\).*no ancestor"):
        crop(n.a, n.b)


def test_paths_that_disagree_are_an_error():
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 8, 8]))
    n.a = L.Convolution(n.data, kernel_size=1, num_output=1)
    n.b = L.Convolution(n.data, kernel_size=3, num_output=1)
    n.fuse = L.Eltwise(n.a, n.b)
    with pytest.raises(CaffeFormatError, match="disagree at data"):
        crop(n.fuse, n.data)
