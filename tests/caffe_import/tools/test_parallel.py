"""caffe_import.tools.parallel: Caffe's multi-GPU sync as torch.distributed (the 2-process
run itself: tests/caffe_import/tools/test_train.py)."""
from __future__ import annotations

import pytest
from support.caffe_project import write_project
from support.datalayers import data_fixture

from caffe_import.errors import UsageError
from caffe_import.layers.data_read import DataLayer
from caffe_import.layers.hdf5_data import HDF5Data
from caffe_import.net import CaffeNet
from caffe_import.tools import parallel


def test_several_gpus_need_one_process_each(monkeypatch):
    monkeypatch.delenv("WORLD_SIZE", raising=False)
    assert parallel.start([]) == (0, 1, [])
    assert parallel.start([3]) == (0, 1, [3])
    with pytest.raises(UsageError, match="torchrun --nproc_per_node=2"):
        parallel.start([0, 1])
    monkeypatch.setenv("WORLD_SIZE", "3")
    with pytest.raises(UsageError, match="2 GPUs for 3 processes"):
        parallel.start([0, 1])


def test_shards_keep_every_other_row_in_train(tmp_path, monkeypatch):
    monkeypatch.chdir(write_project(tmp_path))
    labels = []
    for rank in (0, 1):
        net = CaffeNet("net.prototxt", phase="train", data=True)
        parallel.shard_data(net, rank, 2)
        assert [m.solver_rank for m in net.modules() if isinstance(m, HDF5Data)] == [rank]
        labels.append(net()["label"].tolist())
    whole = CaffeNet("net.prototxt", phase="train", data=True)
    rows = whole()["label"].tolist() + whole()["label"].tolist()
    assert labels[0] == rows[0::2] and labels[1] == rows[1::2]


def test_data_layers_are_sharded_too(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    net = CaffeNet("nets/data_lmdb_resized.prototxt", phase="train", data=True)
    parallel.shard_data(net, 1, 2)
    assert [(m.solver_rank, m.solver_count) for m in net.modules()
            if isinstance(m, DataLayer)] == [(1, 2)]
