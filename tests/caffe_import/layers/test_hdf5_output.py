"""HDF5Output: the file Caffe's layer writes (created at build, datasets data and label in
legacy 4-D float32), rows appended by later forwards, atomic writes and clear errors."""
from __future__ import annotations

import os

import h5py
import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet
from support import case_dir
from support.layer_fixture import make


def _layer(path, shapes=((2, 3), (2,))):
    return make(f'name: "out" type: "HDF5Output" bottom: "data" bottom: "label" '
                f'hdf5_output_param {{ file_name: "{path}" }}', list(shapes))


def test_the_file_is_created_empty_when_the_layer_is_built(tmp_path):
    path = tmp_path / "out.h5"
    path.write_text("old content")  # Caffe truncates (H5F_ACC_TRUNC)
    _layer(path)
    with h5py.File(path, "r") as f:
        assert list(f) == []


def test_forward_writes_data_and_label_as_4d_float32_and_later_forwards_append(tmp_path):
    path = tmp_path / "out.h5"
    layer = _layer(path)
    data, label = torch.arange(6.0).reshape(2, 3), torch.tensor([1.0, 0.0])
    assert layer(data, label) == ()
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (2, 3, 1, 1) and f["label"].shape == (2, 1, 1, 1)
        assert f["data"].dtype == np.float32
        np.testing.assert_array_equal(f["data"][()].reshape(2, 3), data.numpy())
    layer(data.double() + 10, label)
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (4, 3, 1, 1) and f["label"][()].ravel().tolist() == [1, 0, 1, 0]
        assert f["data"][2:].ravel().tolist() == list(range(10, 16))
    assert [p.name for p in tmp_path.iterdir()] == ["out.h5"]  # no temp files left


def test_in_a_net_it_writes_and_passes_no_gradient(tmp_path):
    path = tmp_path / "net_out.h5"
    net = CaffeNet('layer { name: "in" type: "Input" top: "x" top: "y" input_param { '
                   'shape { dim: 3 dim: 2 dim: 2 dim: 2 } shape { dim: 3 } } }\n'
                   f'layer {{ name: "out" type: "HDF5Output" bottom: "x" bottom: "y" '
                   f'hdf5_output_param {{ file_name: "{path}" }} }}')
    assert os.path.exists(path)
    net(x=torch.ones(3, 2, 2, 2), y=torch.arange(3.0))
    with h5py.File(path, "r") as f:
        assert f["data"].shape == (3, 2, 2, 2) and f["label"][()].ravel().tolist() == [0, 1, 2]


def test_bad_settings_and_bottoms_are_clear_errors(tmp_path):
    with pytest.raises(CaffeFormatError, match="file_name"):
        make('name: "out" type: "HDF5Output" bottom: "data" bottom: "label"', [(2, 3), (2,)])
    with pytest.raises(CaffeFormatError, match="same batch size"):
        _layer(tmp_path / "a.h5", [(2, 3), (3,)])
    with pytest.raises(CaffeFormatError, match="more than 4 axes"):
        _layer(tmp_path / "b.h5", [(2, 3, 1, 1, 1), (2,)])
    with pytest.raises(CaffeFormatError, match="2 bottom"):
        make(f'name: "out" type: "HDF5Output" bottom: "data" hdf5_output_param {{ '
             f'file_name: "{tmp_path / "c.h5"}" }}', [(2, 3)])
    (tmp_path / "file").write_text("")
    with pytest.raises(CaffeFormatError, match="cannot create"):
        _layer(tmp_path / "file" / "x.h5")
    layer = _layer(tmp_path / "d.h5")
    layer(torch.zeros(2, 3), torch.zeros(2))
    with pytest.raises(CaffeFormatError, match="cannot be appended"):
        layer(torch.zeros(2, 4), torch.zeros(2))
    with h5py.File(tmp_path / "d.h5", "r") as f:  # the failed append left the file whole
        assert f["data"].shape == (2, 3, 1, 1)


def test_the_file_is_the_one_real_caffe_writes(tmp_path, monkeypatch):
    """BVLC 9b891540 ran hdf5_output_layer/net.prototxt once on inputs.h5 and wrote out.h5
    (file_name relative to the working folder): same datasets, shapes, dtype and values."""
    case = case_dir("hdf5_output_layer")
    with h5py.File(case / "inputs.h5", "r") as f:
        inputs = {k: torch.from_numpy(f[k][()]) for k in f}
    monkeypatch.chdir(tmp_path)
    CaffeNet(case / "net.prototxt")(**inputs)
    with h5py.File(case / "out.h5", "r") as caffe, h5py.File(tmp_path / "out.h5", "r") as ours:
        assert sorted(ours) == sorted(caffe) == ["data", "label"]
        for name in caffe:
            assert ours[name].shape == caffe[name].shape and ours[name].dtype == caffe[name].dtype
            assert np.array_equal(ours[name][()], caffe[name][()])
