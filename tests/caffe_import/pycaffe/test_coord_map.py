"""caffe_import.pycaffe.coord_map: pycaffe's return values and exception types over the
project's coordinate maps (caffe_import.coord_map)."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError
from caffe_import.netspec import L, NetSpec, P
from caffe_import.pycaffe.coord_map import coord_map_from_to, crop


def _net(dpad=0, dstride=2):
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[1, 1, 20, 20]))
    n.conv = L.Convolution(n.data, num_output=2, kernel_size=[3, 5])
    n.pool = L.Pooling(n.conv, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    n.deconv = L.Deconvolution(n.pool, num_output=2, kernel_size=2 * dstride, stride=dstride,
                             pad=dpad)
    n.ip = L.InnerProduct(n.data, num_output=3)
    return n


def test_coord_map_from_to_is_pycaffes_tuple():
    n = _net()
    ax, a, b = coord_map_from_to(n.deconv, n.data)  # x_data = a * x_deconv + b
    assert ax == 1 and isinstance(a, np.ndarray) and isinstance(b, np.ndarray)
    np.testing.assert_array_equal(a, [1.0, 1.0])  # one entry per spatial dimension each
    np.testing.assert_array_equal(b, [0.0, 1.0])  # kernel 3 x 5, pool 2, deconv 4 stride 2


def test_errors_are_pycaffes_types_and_ours():
    n = _net()
    with pytest.raises(RuntimeError) as info:  # pycaffe: "Could not compute map between tops"
        coord_map_from_to(n.ip, n.data)
    assert isinstance(info.value, CaffeFormatError) and "ip" in str(info.value)
    with pytest.raises(AssertionError) as info:  # pycaffe asserts the scales match
        m = _net(dstride=3)
        crop(m.deconv, m.data)
    assert isinstance(info.value, CaffeFormatError)
    with pytest.raises(AssertionError, match="padding"):  # a negative crop offset
        m = _net(dpad=10)
        crop(m.deconv, m.data)
    with pytest.raises(RuntimeError):  # unconnected: RuntimeError from crop too
        crop(n.ip, n.data)
    m = _net()
    assert list(crop(m.data, m.conv).fn.param_with_type().crop_param.offset) == [1, 2]
