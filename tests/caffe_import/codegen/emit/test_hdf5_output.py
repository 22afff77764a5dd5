"""HDF5Output in model.py: no file is written (the module imports only torch); the layer's
hook, when set, receives what real Caffe wrote (hdf5_output_layer/out.h5)."""
from __future__ import annotations

import h5py
import numpy as np
import torch

from caffe_import.codegen import generate, load_generated, write_module
from caffe_import.net import CaffeNet
from support import case_dir


def test_the_hook_receives_the_datasets_real_caffe_writes(tmp_path, monkeypatch):
    case = case_dir("hdf5_output_layer")
    monkeypatch.chdir(tmp_path)  # the CaffeNet creates its out.h5 here
    generated = generate(CaffeNet(case / "net.prototxt"))
    assert "h5py" not in generated.source
    model = load_generated(generated)
    with h5py.File(case / "inputs.h5", "r") as f:
        inputs = {k: torch.from_numpy(f[k][()]) for k in f}
    assert model(*[inputs[n] for n in generated.inputs]) == {}  # unhooked: nothing happens
    received = []
    model.out = lambda file_name, datasets: received.append((file_name, datasets))
    model(*[inputs[n] for n in generated.inputs])
    [(file_name, datasets)] = received
    assert file_name == "out.h5"
    with h5py.File(case / "out.h5", "r") as caffe:
        assert sorted(datasets) == sorted(caffe)
        for name in caffe:
            ours = datasets[name].numpy()
            assert ours.shape == caffe[name].shape and ours.dtype == caffe[name].dtype
            assert np.array_equal(ours, caffe[name][()])


def test_a_net_with_only_hdf5_output_is_written_and_checked(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    net = CaffeNet(case_dir("hdf5_output_layer") / "net.prototxt")
    said = []
    write_module(net, tmp_path / "out", say=said.append)
    assert said and (tmp_path / "out" / "model.py").is_file()
