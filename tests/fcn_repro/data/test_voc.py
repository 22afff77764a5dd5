"""VOC and SBD datasets read their release layouts (synthetic data)."""
from __future__ import annotations

import numpy as np
import pytest
import scipy.io
import torch
from PIL import Image

from fcn_repro.data import SBDSegmentation, VOCSegmentation, get_dataset
from fcn_repro.data.synthetic import make_dataset
from fcn_repro.data.transforms import VOC_MEAN_BGR
from fcn_repro.errors import DatasetError
from fcn_repro.palette import label_image


@pytest.fixture(scope="module")
def voc_root(tmp_path_factory):
    return make_dataset("voc", tmp_path_factory.mktemp("voc"), n=3, seed=1)


def test_voc_items_are_preprocessed_images_and_int64_labels(voc_root):
    ds = VOCSegmentation(voc_root, "val")
    assert len(ds) == 3
    sizes = set()
    for i in range(len(ds)):
        image, label = ds[i]
        assert image.dtype == torch.float32 and image.shape[0] == 3
        assert label.dtype == torch.int64 and label.shape == image.shape[1:]
        assert set(label.unique().tolist()) <= set(range(21)) | {255}
        assert (label == 255).any()
        sizes.add(tuple(label.shape))
        rgb = ds.rgb(i).astype(np.float32)  # BGR minus mean of the very same pixels
        np.testing.assert_allclose(image[0].numpy(), rgb[:, :, 2] - VOC_MEAN_BGR[0], atol=1e-4)
        np.testing.assert_allclose(image[2].numpy(), rgb[:, :, 0] - VOC_MEAN_BGR[2], atol=1e-4)
    assert len(sizes) > 1  # varied sizes


def test_voc_label_is_palette_index_not_colour(tmp_path):
    root = make_dataset("voc", tmp_path, n=1)
    ds = VOCSegmentation(root, "val")
    idx = ds.ids[0]
    h, w = ds[0][1].shape
    known = np.full((h, w), 15, dtype=np.uint8)
    known[0, 0] = 255
    label_image(known).save(root / "SegmentationClass" / f"{idx}.png")
    label = ds[0][1]
    assert label[0, 0] == 255 and label[1, 1] == 15


def test_seg11valid_falls_back_to_the_shipped_list(voc_root, tmp_path):
    (voc_root / "ImageSets" / "Segmentation" / "seg11valid.txt").unlink()
    ds = VOCSegmentation(voc_root, "seg11valid", limit=2)
    assert ds.ids == ["2007_000033", "2007_000042"]
    full = VOCSegmentation(voc_root, "seg11valid")
    assert len(full) == 736


def test_missing_root_names_path_and_layout(tmp_path):
    with pytest.raises(DatasetError) as err:
        VOCSegmentation(tmp_path / "nope", "val")
    assert str(tmp_path / "nope") in str(err.value) and "JPEGImages" in str(err.value)


def test_missing_split_and_image_name_the_expected_path(voc_root, tmp_path):
    with pytest.raises(FileNotFoundError, match=r"ImageSets/Segmentation/nosuch\.txt"):
        VOCSegmentation(voc_root, "nosuch")
    root = make_dataset("voc", tmp_path / "v", n=1)
    ds = VOCSegmentation(root, "val")
    (root / "JPEGImages" / f"{ds.ids[0]}.jpg").unlink()
    with pytest.raises(DatasetError, match=r"JPEGImages/2007_000033\.jpg"):
        ds[0]


def test_sbd_reads_gtcls_segmentation(tmp_path):
    root = make_dataset("sbd", tmp_path, n=2, seed=3)
    ds = get_dataset("sbd", root, "train")
    image, label = ds[1]
    seg = scipy.io.loadmat(root / "cls" / f"{ds.ids[1]}.mat")["GTcls"]["Segmentation"][0, 0]
    np.testing.assert_array_equal(label.numpy(), seg)
    assert image.shape[1:] == label.shape


def test_sbd_bad_mat_is_a_format_error(tmp_path):
    root = make_dataset("sbd", tmp_path, n=1)
    ds = SBDSegmentation(root, "train")
    scipy.io.savemat(root / "cls" / f"{ds.ids[0]}.mat", {"other": np.zeros((2, 2))})
    with pytest.raises(DatasetError, match="GTcls"):
        ds[0]
    (root / "cls" / f"{ds.ids[0]}.mat").write_bytes(b"not a mat file")
    with pytest.raises(DatasetError, match="MATLAB"):
        ds[0]
