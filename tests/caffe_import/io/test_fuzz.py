"""Truncated or bit-flipped fixture files give CaffeFormatError or a valid result, nothing else."""
from __future__ import annotations

import numpy as np
from support import case_dir
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from caffe_import import CaffeFormatError, read_mean, read_net, read_weights

FILES = {
    "caffemodel": (case_dir("layers_norm") / "weights.caffemodel").read_bytes(),
    "v1_caffemodel": (case_dir("format_v1_vgg16_classifier") / "weights.caffemodel").read_bytes()[:20000],
    "mean": (case_dir("format_mean_binaryproto") / "mean.binaryproto").read_bytes(),
    "prototxt": (case_dir("layers_conv") / "net.prototxt").read_bytes(),
    "h5": (case_dir("format_hdf5_fcn16s") / "weights.caffemodel.h5").read_bytes(),
}
SETTINGS = settings(max_examples=150, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.function_scoped_fixture,
                                           HealthCheck.too_slow])


@st.composite
def damaged(draw):
    kind = draw(st.sampled_from(sorted(FILES)))
    data = bytearray(FILES[kind])
    for _ in range(draw(st.integers(0, 4))):
        i = draw(st.integers(0, len(data) - 1))
        data[i] ^= draw(st.integers(1, 255))
    if draw(st.booleans()):
        data = data[:draw(st.integers(0, len(data)))]
    return kind, bytes(data)


def check_weights(result):
    for name, blobs in result.items():
        assert isinstance(name, str)
        for array in blobs:
            assert isinstance(array, np.ndarray) and array.dtype == np.float32


@SETTINGS
@given(damaged())
def test_damaged_files_fail_cleanly(tmp_path, case):
    kind, data = case
    path = tmp_path / f"damaged.{kind}"
    path.write_bytes(data)
    readers = {"caffemodel": read_weights, "v1_caffemodel": read_weights, "mean": read_mean,
               "prototxt": read_net, "h5": read_weights}
    try:
        result = readers[kind](path)
    except CaffeFormatError as exc:
        assert str(path) in str(exc) or "<" in str(exc)
        return
    if kind in ("caffemodel", "v1_caffemodel", "h5"):
        check_weights(result)
    elif kind == "mean":
        assert isinstance(result, np.ndarray) and result.dtype == np.float32
