"""NYUDv2: colour, depth, HHA and their pairs, labels 1..40 -> 0..39 with 0 -> void."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io
from PIL import Image

from fcn_repro.data import NYUDSegmentation
from fcn_repro.data.synthetic import make_dataset
from fcn_repro.data.transforms import NYUD_COLOR_MEAN_BGR, NYUD_HHA_MEAN
from fcn_repro.errors import DatasetError


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    return make_dataset("nyud", tmp_path_factory.mktemp("nyud"), n=2)


@pytest.mark.parametrize("modality, channels", [("color", 3), ("depth", 1), ("hha", 3)])
def test_single_modalities_are_tensors(root, modality, channels):
    image, label = NYUDSegmentation(root, "test", modality=modality)[0]
    assert image.shape[0] == channels and image.shape[1:] == label.shape
    assert set(label.unique().tolist()) <= set(range(40)) | {255}


@pytest.mark.parametrize("modality, keys", [("color-hha", {"color", "hha"}), ("color-depth", {"color", "depth"})])
def test_pairs_are_dicts_keyed_by_net_input_blobs(root, modality, keys):
    inputs, _ = NYUDSegmentation(root, "test", modality=modality)[0]
    assert set(inputs) == keys


def test_values_match_the_release(root):
    ds = NYUDSegmentation(root, "test", modality="color-hha")
    idx = ds.ids[0]
    inputs, _ = ds[0]
    rgb = np.asarray(Image.open(root / "data" / "images" / f"img_{idx}.png"), np.float32)
    hha = np.asarray(Image.open(root / "data" / "hha" / f"img_{idx}.png"), np.float32)
    np.testing.assert_allclose(inputs["color"][0].numpy(), rgb[:, :, 2] - NYUD_COLOR_MEAN_BGR[0], atol=1e-4)
    np.testing.assert_allclose(inputs["hha"][0].numpy(), hha[:, :, 0] - NYUD_HHA_MEAN[0], atol=1e-4)
    depth = NYUDSegmentation(root, "test", modality="depth")[0][0]
    d = np.asarray(Image.open(root / "data" / "depth" / f"img_{idx}.png"), np.float32)
    np.testing.assert_allclose(depth[0].numpy(), np.log(d) - 7.844, atol=1e-5)


def test_label_shift(root):
    ds = NYUDSegmentation(root, "test")
    idx = ds.ids[1]
    h, w = ds[1][1].shape
    seg = np.ones((h, w), np.uint8); seg[0, :3] = [0, 1, 40]
    scipy.io.savemat(root / "segmentation" / f"img_{idx}.mat", {"segmentation": seg})
    assert ds[1][1][0, :3].tolist() == [255, 0, 39]


def test_unknown_modality_and_missing_hha(root, tmp_path):
    with pytest.raises(ValueError, match="modality"):
        NYUDSegmentation(root, "test", modality="rgbd")
    other = make_dataset("nyud", tmp_path, n=1)
    ds = NYUDSegmentation(other, "test", modality="hha")
    (other / "data" / "hha" / f"img_{ds.ids[0]}.png").unlink()
    with pytest.raises(DatasetError, match=r"data/hha/img_"):
        ds[0]
