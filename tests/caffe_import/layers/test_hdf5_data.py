"""caffe_import.layers.hdf5_data: Caffe's HDF5Data layer (reads when built with data=True)."""
from __future__ import annotations

from types import SimpleNamespace

import h5py
import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet

NET = """
layer { name: "h5" type: "HDF5Data" top: "data" top: "label"
  hdf5_data_param { source: "%s" batch_size: %d %s } }
layer { name: "ip" type: "InnerProduct" bottom: "data" top: "ip" inner_product_param { num_output: 2 } }
"""


def _files(tmp_path, sizes=(3, 2), dtype=np.float64):
    names, start = [], 0
    for i, n in enumerate(sizes):
        name = tmp_path / f"part{i}.h5"
        with h5py.File(name, "w") as f:
            f["data"] = (np.arange(start, start + n)[:, None, None] * np.ones((1, 2, 2))).astype(dtype)
            f["label"] = np.arange(start, start + n, dtype=np.int32)
        names.append(str(name))
        start += n
    source = tmp_path / "list.txt"
    source.write_text("\n".join(names) + "\n")
    return source


def _net(source, batch, extra="", **kw):
    return CaffeNet(NET % (source, batch, extra), data=True, keep_blobs=True, **kw)


def test_rows_across_files_in_order_wrapping_around(tmp_path):
    net = _net(_files(tmp_path), 2)
    assert net.blob_shapes["data"] == (2, 2, 2) and net.blob_shapes["label"] == (2,)
    assert net.inputs == []
    seen = []
    for _ in range(4):
        out = net()
        seen.extend(out["label"].numpy().tolist())
        np.testing.assert_array_equal(out["data"][:, 0, 0].numpy(), out["label"].numpy())
    assert seen == [0, 1, 2, 3, 4, 0, 1, 2]


def test_any_numeric_dtype_reads_as_float32(tmp_path):
    net = _net(_files(tmp_path, (4,), np.uint8), 4)
    out = net()
    assert out["data"].dtype == out["label"].dtype
    assert str(out["data"].dtype) == "torch.float32"
    np.testing.assert_array_equal(out["label"].numpy(), [0, 1, 2, 3])


def test_shuffle_visits_every_row_once_per_pass(tmp_path):
    net = _net(_files(tmp_path, (3, 3)), 6, "shuffle: true", phase="train")
    labels = net()["label"].numpy()
    assert sorted(labels.tolist()) == [0, 1, 2, 3, 4, 5]


def test_without_data_it_stays_a_net_input(tmp_path):
    net = CaffeNet(NET % ("missing.txt", 2, ""), input_shapes={"data": (2, 2, 2), "label": (2,)})
    assert net.inputs == ["data", "label"]


def test_missing_list_names_layer_and_file(tmp_path):
    with pytest.raises(CaffeFormatError, match=r"missing\.txt.*layer 'h5'"):
        _net(tmp_path / "missing.txt", 2)


def test_missing_or_corrupt_file_is_one_error_at_build(tmp_path):
    source = _files(tmp_path)
    (tmp_path / "part1.h5").write_bytes(b"not hdf5 at all")
    with pytest.raises(CaffeFormatError, match=r"part1\.h5.*layer 'h5'.*cannot read"):
        _net(source, 2)
    (tmp_path / "part1.h5").unlink()
    with pytest.raises(CaffeFormatError, match=r"part1\.h5.*layer 'h5'"):
        _net(source, 2)


def test_missing_dataset_and_row_mismatch(tmp_path):
    with h5py.File(tmp_path / "a.h5", "w") as f:
        f["data"] = np.zeros((2, 3), np.float32)
    (tmp_path / "l.txt").write_text(str(tmp_path / "a.h5"))
    with pytest.raises(CaffeFormatError, match="no dataset 'label'"):
        _net(tmp_path / "l.txt", 1)
    with h5py.File(tmp_path / "a.h5", "a") as f:
        f["label"] = np.zeros(3, np.float32)
    with pytest.raises(CaffeFormatError, match="different numbers of rows"):
        _net(tmp_path / "l.txt", 1)


def test_transform_param_is_refused(tmp_path):
    with pytest.raises(CaffeFormatError, match="does not transform"):
        _net(_files(tmp_path), 2, "} transform_param { scale: 2")


def test_a_seed_makes_the_shuffle_reproducible(tmp_path):
    """The net's data setting's ``seed`` (a ``DataReading``-like object) seeds the shuffles."""
    net = _net(_files(tmp_path, (3, 3)), 6, "shuffle: true", phase="train")
    layer = net.layer("h5")
    orders = []
    for _ in range(2):
        layer.open_source(SimpleNamespace(seed=3))
        orders.append([net()["label"].tolist() for _ in range(3)])
    assert orders[0] == orders[1]
