"""Loading a caffemodel into a net holds one copy of the weights (tools/bench_load.py measures it)."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError
from caffe_import.io import read_weights
from caffe_import.io.binary import copy_and_release, mapped_base, scan_file
from caffe_import.net import CaffeNet
from support import case_dir


def test_read_weights_arrays_are_views_of_the_mapped_file():
    weights = read_weights(case_dir("voc_fcn8s_narrow") / "weights.caffemodel")
    assert all(mapped_base(a) is not None for blobs in weights.values() for a in blobs)


def test_copy_and_release_copies_exactly_and_the_source_still_reads_the_file():
    path = case_dir("voc_fcn8s_narrow") / "weights.caffemodel"
    src = read_weights(path)["fc6"][0]
    expected = read_weights(path, copy=True)["fc6"][0]
    dst = np.empty_like(expected)
    copy_and_release(src, dst, chunk_bytes=4096)  # many chunks, pages released between them
    np.testing.assert_array_equal(dst, expected)
    np.testing.assert_array_equal(src, expected)  # released pages are read back from the file


def test_net_loaded_from_file_holds_the_files_values():
    case = case_dir("voc_fcn8s_narrow")
    net = CaffeNet(case / "net.prototxt", weights=case / "weights.caffemodel")
    expected = read_weights(case / "weights.caffemodel", copy=True)
    for name, blobs in expected.items():
        for got, want in zip(net.params[name], blobs):
            np.testing.assert_array_equal(got.detach().numpy().reshape(want.shape), want)


def test_a_truncated_caffemodel_names_the_layer_whose_bytes_are_cut(tmp_path):
    # fc6's entry runs past the end: the error names fc6, not pool5 (the last whole layer)
    model = scan_file(case_dir("voc_fcn8s_narrow") / "weights.caffemodel")
    fc6 = next(layer for layer in model.layers if layer.name == "fc6")
    data = (case_dir("voc_fcn8s_narrow") / "weights.caffemodel").read_bytes()
    for cut in (fc6.start + 40, (fc6.start + fc6.end) // 2, fc6.end - 1):
        path = tmp_path / "cut.caffemodel"
        path.write_bytes(data[:cut])
        with pytest.raises(CaffeFormatError, match=r"layer 'fc6': corrupt or truncated"):
            read_weights(path)


def test_a_truncated_v1_caffemodel_names_the_layer_whose_bytes_are_cut(tmp_path):
    source = case_dir("format_v1_vgg16_classifier") / "weights.caffemodel"
    model = scan_file(source)
    last = [layer for layer in model.layers if layer.blobs][-1]
    path = tmp_path / "cut.caffemodel"
    path.write_bytes(source.read_bytes()[:(last.start + last.end) // 2])
    with pytest.raises(CaffeFormatError, match=rf"layer '{last.name}': corrupt or truncated"):
        read_weights(path)
