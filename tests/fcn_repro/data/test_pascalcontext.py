"""PASCAL-Context: the full labels mapped to 59 classes + background (0)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io

from fcn_repro.data import PascalContextSegmentation
from fcn_repro.data.pascalcontext import CONTEXT59_CLASSES, FULL_CLASSES, map_to_59
from fcn_repro.data.synthetic import make_dataset
from fcn_repro.errors import DatasetError

FULL = {name: number for number, name in FULL_CLASSES}


def test_mapping_by_name_with_the_releases_renames():
    assert len(CONTEXT59_CLASSES) == 60 and CONTEXT59_CLASSES[0] == "background"
    full = np.array([FULL["aeroplane"], FULL["table"], FULL["bedclothes"], FULL["cloth"],
                     FULL["wood"], FULL["accordion"], 0, 9999])
    mapped = map_to_59(full)
    assert mapped.tolist() == [1, CONTEXT59_CLASSES.index("diningtable"), CONTEXT59_CLASSES.index("bedcloth"),
                               CONTEXT59_CLASSES.index("clothes"), 59, 0, 0, 0]


def test_every_one_of_59_classes_is_reachable():
    values = map_to_59(np.arange(len(FULL_CLASSES) + 1))
    assert sorted(set(values.tolist())) == list(range(60))


def test_dataset_reads_layout(tmp_path):
    root = make_dataset("pascalcontext", tmp_path, n=2)
    ds = PascalContextSegmentation(root, "val")
    image, label = ds[0]
    full = scipy.io.loadmat(root / "trainval" / f"{ds.ids[0]}.mat")["LabelMap"]
    np.testing.assert_array_equal(label.numpy(), map_to_59(full))
    assert image.shape[1:] == label.shape and label.max() < 60


def test_missing_voc2010_names_the_layout(tmp_path):
    root = make_dataset("pascalcontext", tmp_path, n=1)
    with pytest.raises(DatasetError, match=r"VOC2010/ImageSets/Main/test\.txt"):
        PascalContextSegmentation(root, "test")


def test_voc2010_may_live_elsewhere(tmp_path):
    root = make_dataset("pascalcontext", tmp_path / "ctx", n=1)
    (root / "VOC2010").rename(tmp_path / "VOC2010")
    ds = PascalContextSegmentation(root, "val", voc_dir=tmp_path / "VOC2010")
    assert ds[0][0].shape[1:] == ds[0][1].shape
