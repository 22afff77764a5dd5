"""caffe_import.layers.data_transform: Caffe's DataTransformer rules (the batches of real
Caffe are compared in test_data_read.py)."""
from __future__ import annotations

import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError
from caffe_import.io.datasets import write_mean
from caffe_import.layers.data_transform import DataTransformer, stack
from caffe_import.proto import caffe_pb2

PIXELS = np.arange(3 * 6 * 7, dtype=np.uint8).reshape(3, 6, 7)


def transformer(phase="test", seed=0, **fields) -> DataTransformer:
    param = caffe_pb2.TransformationParameter()
    for name, value in fields.items():
        if isinstance(value, list):
            getattr(param, name).extend(value)
        else:
            setattr(param, name, value)
    return DataTransformer(param, phase, np.random.default_rng(seed), layer="L")


def test_scale_alone_multiplies_in_float32():
    out = transformer(scale=0.00390625)(PIXELS)
    assert out.dtype == np.float32
    np.testing.assert_array_equal(out, PIXELS.astype(np.float32) * np.float32(0.00390625))


def test_test_phase_crop_is_centred_at_floor_offsets():
    t = transformer(crop_size=4)
    assert t.shape(3, 6, 7) == (3, 4, 4)
    np.testing.assert_array_equal(t(PIXELS), PIXELS[:, 1:5, 1:5])  # (6-4)//2, (7-4)//2


def test_mean_file_is_indexed_at_the_crop_offset(tmp_path):
    mean = np.random.default_rng(1).random((1, 3, 6, 7), dtype=np.float32) * 100
    write_mean(tmp_path / "m.binaryproto", mean)
    out = transformer(crop_size=4, scale=0.5, mean_file=str(tmp_path / "m.binaryproto"))(PIXELS)
    want = (PIXELS[:, 1:5, 1:5].astype(np.float32) - mean[0, :, 1:5, 1:5]) * np.float32(0.5)
    np.testing.assert_array_equal(out, want)


def test_one_mean_value_serves_every_channel():
    one = transformer(mean_value=[10.5])(PIXELS)
    three = transformer(mean_value=[10.5, 10.5, 10.5])(PIXELS)
    np.testing.assert_array_equal(one, three)
    np.testing.assert_array_equal(one, PIXELS.astype(np.float32) - np.float32(10.5))
    with pytest.raises(CaffeFormatError, match="layer 'L': 2 mean_value"):
        transformer(mean_value=[1, 2])(PIXELS)


def test_train_crops_and_mirrors_at_random_from_the_seed():
    def crops(seed):
        t = transformer("train", seed, crop_size=4, mirror=True)
        return [t(PIXELS) for _ in range(20)]

    a, b = crops(5), crops(5)
    assert all(np.array_equal(x, y) for x, y in zip(a, b))
    windows = {PIXELS[:, i:i + 4, j:j + 4].tobytes() for i in range(3) for j in range(4)}
    mirrored = {PIXELS[:, i:i + 4, j:j + 4][:, :, ::-1].tobytes()
                for i in range(3) for j in range(4)}
    seen = {x.astype(np.uint8).tobytes() for x in a}
    assert seen <= windows | mirrored and seen & mirrored and seen & windows


def test_mirror_is_random_in_test_too():
    t = transformer(mirror=True, seed=3)
    flips = {bool(np.array_equal(t(PIXELS), PIXELS[:, :, ::-1])) for _ in range(20)}
    assert flips == {True, False}


def test_contradictory_parameters_are_errors(tmp_path):
    with pytest.raises(CaffeFormatError, match="both force_color and force_gray"):
        transformer(force_color=True, force_gray=True)
    write_mean(tmp_path / "m.binaryproto", np.zeros((1, 3, 6, 7), np.float32))
    with pytest.raises(CaffeFormatError, match="mean_file and mean_value at the same time"):
        transformer(mean_file=str(tmp_path / "m.binaryproto"), mean_value=[1])
    with pytest.raises(CaffeFormatError, match="image x: 6 x 7 is smaller than crop_size 8"):
        transformer(crop_size=8)(PIXELS, what="x")
    (tmp_path / "bad.binaryproto").write_bytes(b"\x01\x02")
    with pytest.raises(CaffeFormatError, match="bad.binaryproto, layer 'L'"):
        transformer(mean_file=str(tmp_path / "bad.binaryproto"))


def test_stack_names_the_item_of_another_size():
    with pytest.raises(CaffeFormatError, match="layer 'L': b gives an item of shape"):
        stack([np.zeros((1, 2, 2)), np.zeros((1, 2, 3))], layer="L", names=["a", "b"])
