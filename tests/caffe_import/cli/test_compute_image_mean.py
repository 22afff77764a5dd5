"""caffe-import compute-image-mean: Caffe's tool's numbers and file."""
from __future__ import annotations

from caffe_import.cli import main
from support.datalayers import data_fixture


def test_mean_file_is_caffes_byte_for_byte(tmp_path, monkeypatch, capsys):
    data_fixture(tmp_path, monkeypatch)
    assert main(["compute-image-mean", "caffe/lmdb_resized", "ours.binaryproto"]) == 0
    with open("ours.binaryproto", "rb") as a, open("caffe/mean_resized.binaryproto", "rb") as b:
        assert a.read() == b.read()
    out = capsys.readouterr().out
    assert "Number of channels: 3" in out and "mean_value channel [2]:" in out


def test_caffes_backend_flag_and_no_output_file(tmp_path, monkeypatch, capsys):
    data_fixture(tmp_path, monkeypatch)
    assert main(["compute-image-mean", "-backend", "leveldb", "caffe/leveldb_gray"]) == 0
    out = capsys.readouterr().out
    assert "Write to" not in out and "Number of channels: 1" in out
    assert main(["compute-image-mean", "--backend=lmdb", "caffe/leveldb_gray"]) == 2
    assert "this is a leveldb database, but the backend is lmdb" in capsys.readouterr().err
