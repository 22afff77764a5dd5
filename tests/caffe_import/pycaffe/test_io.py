"""caffe_import.pycaffe.io: pycaffe's converters, Transformer and image helpers."""
from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from caffe_import.proto import caffe_pb2
from caffe_import.pycaffe import io


def test_blobproto_round_trip_and_legacy_shape():
    arr = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    blob = io.array_to_blobproto(arr, diff=-arr)
    np.testing.assert_array_equal(io.blobproto_to_array(blob), arr)
    np.testing.assert_array_equal(io.blobproto_to_array(blob, return_diff=True), -arr)
    legacy = caffe_pb2.BlobProto(num=1, channels=2, height=3, width=4)
    legacy.data.extend(range(24))
    assert io.blobproto_to_array(legacy).shape == (1, 2, 3, 4)
    s = io.arraylist_to_blobprotovector_str([arr, arr[0]])
    back = io.blobprotovector_str_to_arraylist(s)
    assert [b.shape for b in back] == [(2, 3, 4), (3, 4)]


def test_datum_round_trip():
    u8 = np.arange(24, dtype=np.uint8).reshape(2, 3, 4)
    d = io.array_to_datum(u8, label=3)
    assert d.label == 3 and len(d.data) == 24
    np.testing.assert_array_equal(io.datum_to_array(d), u8)
    f = io.datum_to_array(io.array_to_datum(u8.astype(np.float32) / 2))
    np.testing.assert_allclose(f, u8 / 2)
    with pytest.raises(ValueError, match="Incorrect array shape"):
        io.array_to_datum(np.zeros((2, 2)))


def test_transformer_preprocess_deprocess():
    t = io.Transformer({"data": (1, 3, 4, 5)})
    t.set_transpose("data", (2, 0, 1))
    t.set_channel_swap("data", (2, 1, 0))
    t.set_raw_scale("data", 255)
    t.set_mean("data", np.array([10.0, 20.0, 30.0]))
    t.set_input_scale("data", 0.5)
    img = np.random.RandomState(0).rand(4, 5, 3).astype(np.float32)
    out = t.preprocess("data", img)
    expect = (img.transpose(2, 0, 1)[::-1] * 255 - np.array([10, 20, 30.])[:, None, None]) * 0.5
    np.testing.assert_allclose(out, expect, rtol=1e-5)
    np.testing.assert_allclose(t.deprocess("data", out), img, rtol=1e-4, atol=1e-5)
    with pytest.raises(ValueError, match="not one of the net inputs"):
        t.preprocess("nope", img)
    with pytest.raises(ValueError, match="Transpose order"):
        t.set_transpose("data", (1, 0))
    with pytest.raises(ValueError, match="Channel swap"):
        t.set_channel_swap("data", (1, 0))
    with pytest.raises(ValueError, match="Mean channels"):
        t.set_mean("data", np.zeros(2))
    t.set_mean("data", np.ones((3, 8, 10)) * np.arange(3)[:, None, None] + np.eye(8, 10))
    assert t.mean["data"].shape == (3, 4, 5)  # elementwise mean resized to the input


def test_preprocess_resizes_to_the_input():
    t = io.Transformer({"data": (1, 3, 6, 8)})
    t.set_transpose("data", (2, 0, 1))
    assert t.preprocess("data", np.random.rand(12, 16, 3)).shape == (3, 6, 8)


def test_load_image(tmp_path):
    rgb = np.random.RandomState(1).randint(0, 256, (5, 7, 3)).astype(np.uint8)
    Image.fromarray(rgb).save(tmp_path / "a.png")
    img = io.load_image(str(tmp_path / "a.png"))
    assert img.dtype == np.float32 and img.shape == (5, 7, 3)
    np.testing.assert_allclose(img, rgb / 255.0, rtol=1e-6)
    gray = io.load_image(str(tmp_path / "a.png"), color=False)
    assert gray.shape == (5, 7, 1) and gray.dtype == np.float32
    # skimage's rgb2gray, which pycaffe's imread(as_grey=True) applies
    np.testing.assert_allclose(gray[..., 0], (rgb / 255.0) @ [0.2125, 0.7154, 0.0721], rtol=1e-6)
    Image.fromarray(rgb[..., 0]).save(tmp_path / "g.png")
    assert io.load_image(str(tmp_path / "g.png")).shape == (5, 7, 3)
    Image.fromarray(np.dstack([rgb, rgb[..., :1]]), "RGBA").save(tmp_path / "r.png")
    assert io.load_image(str(tmp_path / "r.png")).shape == (5, 7, 3)


def test_resize_image():
    im = np.random.RandomState(2).rand(4, 6, 3).astype(np.float32)
    out = io.resize_image(im, (8, 12))
    assert out.shape == (8, 12, 3) and out.dtype == np.float32
    assert out.min() >= im.min() - 1e-6 and out.max() <= im.max() + 1e-6
    np.testing.assert_array_equal(io.resize_image(np.full((3, 3, 1), 5.0), (2, 2)), 5.0)
    assert io.resize_image(np.random.rand(4, 4, 5), (2, 3)).shape == (2, 3, 5)


def test_oversample():
    ims = [np.arange(6 * 8 * 1, dtype=np.float32).reshape(6, 8, 1)]
    crops = io.oversample(ims, (4, 4))
    assert crops.shape == (10, 4, 4, 1)
    np.testing.assert_array_equal(crops[0], ims[0][:4, :4])
    np.testing.assert_array_equal(crops[4], ims[0][1:5, 2:6])  # center
    np.testing.assert_array_equal(crops[5], crops[0][:, ::-1])  # mirrors
