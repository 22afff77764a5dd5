"""SIFT Flow: semantic + geometric labels shifted as the release does."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from fcn_repro.data import SIFTFlowSegmentation
from fcn_repro.data.siftflow import ABSENT_FROM_TEST, SEMANTIC_CLASSES, SUBDIR
from fcn_repro.data.synthetic import make_dataset
from fcn_repro.data.transforms import SIFTFLOW_MEAN_BGR
from fcn_repro.errors import DatasetError


def test_items_have_sem_and_geo_labels(tmp_path):
    root = make_dataset("siftflow", tmp_path, n=2)
    ds = SIFTFlowSegmentation(root, "test")
    image, labels = ds[0]
    assert set(labels) == {"sem", "geo"}
    assert labels["sem"].shape == labels["geo"].shape == image.shape[1:]
    assert set(labels["sem"].unique().tolist()) <= set(range(33)) | {255}
    assert set(labels["geo"].unique().tolist()) <= {0, 1, 2, 255}
    rgb = ds.rgb(0).astype(np.float32)
    np.testing.assert_allclose(image[1].numpy(), rgb[:, :, 1] - SIFTFLOW_MEAN_BGR[1], atol=1e-4)


def test_known_label_values(tmp_path):
    root = make_dataset("siftflow", tmp_path, n=1)
    ds = SIFTFlowSegmentation(root, "test")
    idx = ds.ids[0]
    h, w = ds[0][0].shape[1:]
    sem = np.zeros((h, w), np.int32); sem[0, :3] = [0, 1, 33]
    geo = np.zeros((h, w), np.int32); geo[0, :4] = [-1, 0, 1, 3]
    scipy.io.savemat(root / "SemanticLabels" / SUBDIR / f"{idx}.mat", {"S": sem})
    scipy.io.savemat(root / "GeoLabels" / SUBDIR / f"{idx}.mat", {"S": geo})
    labels = ds[0][1]
    assert labels["sem"][0, :3].tolist() == [255, 0, 32]
    assert labels["geo"][0, :4].tolist() == [255, 255, 0, 2]


def test_absent_classes_are_cow_desert_moon():
    assert [SEMANTIC_CLASSES[i] for i in ABSENT_FROM_TEST] == ["cow", "desert", "moon"]
    assert SIFTFlowSegmentation.exclude_classes["sem"] == ABSENT_FROM_TEST
    assert SIFTFlowSegmentation.score_heads == {"score_sem": "sem", "score_geo": "geo"}


def test_shipped_split_list_is_used_when_absent(tmp_path):
    root = make_dataset("siftflow", tmp_path, n=1)
    (root / "test.txt").unlink()
    assert len(SIFTFlowSegmentation(root, "test")) == 200


def test_missing_geo_labels_name_the_path(tmp_path):
    root = make_dataset("siftflow", tmp_path, n=1)
    ds = SIFTFlowSegmentation(root, "test")
    (root / "GeoLabels" / SUBDIR / f"{ds.ids[0]}.mat").unlink()
    with pytest.raises(DatasetError, match="GeoLabels"):
        ds[0]
