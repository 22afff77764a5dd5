"""The release's preprocessing on a tiny known image."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from fcn_repro.data import transforms as T


def test_rgb_becomes_bgr_minus_mean_channels_first():
    rgb = np.array([[[10, 20, 30], [40, 50, 60]]], dtype=np.uint8)  # 1 x 2 pixels
    out = T.caffe_rgb(rgb, (1.0, 2.0, 3.0))
    assert out.dtype == np.float32 and out.shape == (3, 1, 2)
    # channel 0 is blue (30, 60) minus the blue mean 1.0, and so on
    np.testing.assert_array_equal(out[:, 0, 0], [29.0, 18.0, 7.0])
    np.testing.assert_array_equal(out[:, 0, 1], [59.0, 48.0, 37.0])


def test_voc_mean_is_the_releases():
    x = T.preprocess_rgb(Image.new("RGB", (3, 2), (122, 116, 104)))
    assert tuple(x.shape) == (3, 2, 3)
    np.testing.assert_allclose(x[:, 0, 0].numpy(), [104 - 104.00698793, 116 - 116.66876762, 122 - 122.67891434],
                               rtol=0, atol=1e-5)


def test_hha_keeps_file_channel_order():
    hha = np.full((1, 1, 3), (200, 100, 50), dtype=np.uint8)
    out = T.caffe_unflipped(hha, T.NYUD_HHA_MEAN)
    np.testing.assert_allclose(out[:, 0, 0], [200 - 132.431, 100 - 94.076, 50 - 118.477], atol=1e-4)


def test_depth_is_log_minus_7_844_one_channel():
    d = np.array([[1000, np.e ** 7.844]], dtype=np.float32)
    out = T.caffe_log_depth(d)
    assert out.shape == (1, 1, 2)
    np.testing.assert_allclose(out[0, 0], [np.log(1000) - 7.844, 0.0], atol=1e-4)
    assert np.isneginf(T.caffe_log_depth(np.zeros((1, 1)))[0, 0, 0])  # as the release: no special case


def test_label_shift_wraps_void_zero_to_255():
    np.testing.assert_array_equal(T.shift_labels(np.array([0, 1, 33])), [255, 0, 32])


def test_grayscale_images_are_made_rgb():
    x = T.preprocess_rgb(Image.new("L", (2, 2), 100), (0.0, 0.0, 0.0))
    assert tuple(x.shape) == (3, 2, 2) and float(x.max()) == 100.0


def test_wrong_shape_is_a_value_error():
    with pytest.raises(ValueError):
        T.caffe_rgb(np.zeros((2, 2)), (0, 0, 0))


def _release_load_image(rgb: np.ndarray, mean) -> np.ndarray:
    """voc_layers.py / infer.py, line for line: the mean is subtracted in place."""
    in_ = np.array(rgb, dtype=np.float32)
    in_ = in_[:, :, ::-1]
    in_ -= mean
    return in_.transpose((2, 0, 1))


def test_voc_mean_is_subtracted_in_float64_and_rounded_once_as_the_release():
    # every 8-bit value in every channel; with VOC's float64 mean about a third of them round
    # differently when the mean is made float32 first (e.g. 53 - 116.66876762 in green)
    rgb = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
    release = _release_load_image(rgb, np.array((104.00698793, 116.66876762, 122.67891434)))
    rounded_first = _release_load_image(rgb, np.array(T.VOC_MEAN_BGR, dtype=np.float32))
    assert (release != rounded_first).any()  # the case below can tell the two apart
    np.testing.assert_array_equal(T.caffe_rgb(rgb, T.VOC_MEAN_BGR), release)
    np.testing.assert_array_equal(T.preprocess_rgb(rgb).numpy(), release)
    np.testing.assert_array_equal(T.caffe_rgb(rgb, tuple(float(v) for v in T.VOC_MEAN_BGR)), release)


def test_float32_means_stay_float32_as_in_their_layers():
    rgb = np.repeat(np.arange(256, dtype=np.uint8)[:, None, None], 3, axis=2)
    for mean in (T.SIFTFLOW_MEAN_BGR, T.PASCALCONTEXT_MEAN_BGR, T.NYUD_COLOR_MEAN_BGR):
        assert np.asarray(mean).dtype == np.float32
        np.testing.assert_array_equal(T.caffe_rgb(rgb, mean), _release_load_image(rgb, mean))
    hha = np.array(rgb, dtype=np.float32)
    hha -= T.NYUD_HHA_MEAN
    np.testing.assert_array_equal(T.caffe_unflipped(rgb, T.NYUD_HHA_MEAN), hha.transpose(2, 0, 1))


def test_the_callers_image_is_left_alone():
    rgb = np.full((1, 1, 3), 7.0, dtype=np.float32)
    T.caffe_rgb(rgb, T.VOC_MEAN_BGR)
    T.caffe_unflipped(rgb, T.NYUD_HHA_MEAN)
    assert (rgb == 7.0).all()
