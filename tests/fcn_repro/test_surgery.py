"""Net surgery: the VGG16 -> FCN-32s transplant reproduces real Caffe + the release exactly."""
from __future__ import annotations

import json
from collections import OrderedDict

import h5py
import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.io import read_weights
from support import case_dir
from fcn_repro.surgery import expand_score, init_upsampling, transplant, upsampling_weights

CASE = case_dir("surgery_transplant_vgg_to_fcn32s")


def reference_params() -> dict[str, list[np.ndarray]]:
    with h5py.File(CASE / "reference.h5", "r") as f:
        return {name: [f["params"][name][str(i)][()] for i in range(len(f["params"][name]))]
                for name in f["params"]}


def expected_log() -> list[str]:
    return json.loads((CASE / "meta.json").read_text())["log"]


def test_transplant_into_weights_mapping_is_exact_and_logs_like_the_release():
    fcn = read_weights(CASE / "fcn32s_init.caffemodel")
    lines = transplant(fcn, CASE / "vgg16.caffemodel", log=None)
    assert lines == expected_log()
    ref = reference_params()
    assert set(ref) == set(fcn)
    for name, blobs in ref.items():
        for i, blob in enumerate(blobs):
            np.testing.assert_array_equal(fcn[name][i], blob, err_msg=f"{name} {i}")
    shipped = read_weights(CASE / "fcn32s_transplanted.caffemodel")
    for name in shipped:
        for a, b in zip(shipped[name], fcn[name]):
            np.testing.assert_array_equal(a, b)


def test_transplant_into_a_caffenet():
    net_mod = pytest.importorskip("caffe_import.net")
    net = net_mod.CaffeNet(str(CASE / "fcn32s.prototxt"), weights=str(CASE / "fcn32s_init.caffemodel"))
    vgg = net_mod.CaffeNet(str(CASE / "vgg16.prototxt"), weights=str(CASE / "vgg16.caffemodel"))
    lines = transplant(net, vgg, log=None)
    assert lines == expected_log()
    for name, blobs in reference_params().items():
        for i, blob in enumerate(blobs):
            np.testing.assert_array_equal(net.params[name][i].detach().numpy(), blob)


def test_element_count_mismatch_is_an_error_not_a_silent_repeat():
    new = OrderedDict(fc6=[np.zeros((4, 2, 2, 2), np.float32)])
    old = OrderedDict(fc6=[np.ones((4, 7), np.float32)])
    with pytest.raises(CaffeFormatError, match="fc6"):
        transplant(new, old, log=None)


def test_suffix_and_extra_blobs_are_logged():
    new = OrderedDict(conv_new=[np.zeros((2, 3), np.float32)])
    old = OrderedDict(conv=[np.arange(6, dtype=np.float32).reshape(2, 3), np.ones(2, np.float32)])
    lines = transplant(new, old, suffix="_new", log=None)
    assert lines == ["copying conv -> conv_new 0", "dropping conv 1"]
    np.testing.assert_array_equal(new["conv_new"][0], old["conv"][0])


def release_upsample_filt(size: int) -> np.ndarray:
    """The release's surgery.upsample_filt (float64), the reference for our one kernel."""
    factor = (size + 1) // 2
    center = factor - 1 if size % 2 == 1 else factor - 0.5
    og = np.ogrid[:size, :size]
    return (1 - abs(og[0] - center) / factor) * (1 - abs(og[1] - center) / factor)


def test_upsampling_weights_are_the_releases_kernel_on_the_diagonal():
    # size 4 (factor 2, centre 1.5): 1-D profile 0.25, 0.75, 0.75, 0.25
    np.testing.assert_array_equal(release_upsample_filt(4), np.outer([.25, .75, .75, .25], [.25, .75, .75, .25]))
    for size in range(1, 65):
        w = upsampling_weights(2, size)
        np.testing.assert_array_equal(w[1, 1].numpy(), release_upsample_filt(size).astype(np.float32))
    w = upsampling_weights(3, 4)
    assert w.shape == (3, 3, 4, 4)
    assert float(w[0, 1].abs().sum()) == 0.0
    assert upsampling_weights(5, 4, per_channel=True).shape == (5, 1, 4, 4)


def test_bilinear_deconvolution_doubles_a_constant_image():
    w = upsampling_weights(2, 4)
    x = torch.ones(1, 2, 5, 5)
    y = torch.nn.functional.conv_transpose2d(x, w, stride=2)
    torch.testing.assert_close(y[0, :, 2:-2, 2:-2], torch.ones(2, 8, 8))  # interior interpolates


def test_init_upsampling_on_named_layers_and_rejections():
    table = OrderedDict(up=[np.zeros((2, 2, 4, 4), np.float32)], bad=[np.zeros((2, 3, 4, 4), np.float32)])
    assert init_upsampling(table, ["up"]) == ["up"]
    np.testing.assert_allclose(table["up"][0][0, 0], release_upsample_filt(4))
    with pytest.raises(CaffeFormatError, match="bad"):
        init_upsampling(table, ["bad"])


def test_expand_score_keeps_old_classes_first():
    old = OrderedDict(score=[np.ones((3, 4, 1, 1), np.float32), np.arange(3, dtype=np.float32)])
    new = OrderedDict(score=[np.zeros((5, 4, 1, 1), np.float32), np.full(5, -1, np.float32)])
    expand_score(new, "score", old, "score")
    np.testing.assert_array_equal(new["score"][0][:3], 1)
    np.testing.assert_array_equal(new["score"][0][3:], 0)
    np.testing.assert_array_equal(new["score"][1], [0, 1, 2, -1, -1])
