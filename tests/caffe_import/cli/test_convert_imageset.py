"""caffe-import convert-imageset: Caffe's tool's flags and output (tests/fixtures/datalayers)."""
from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest

from caffe_import.cli import main
from caffe_import.io import datasets as ds
from support import ROOT
from support.datalayers import data_fixture


def same_records(ours: str, caffe: str, backend: str) -> None:
    a, b = list(ds.open_db(ours, backend).items()), list(ds.open_db(caffe, backend).items())
    assert [k for k, _ in a] == [k for k, _ in b]
    assert [v for _, v in a] == [v for _, v in b]


@pytest.mark.parametrize("flags, caffe_db, backend", [
    (["-resize_height", "10", "-resize_width", "12"], "lmdb_resized", "lmdb"),
    (["--resize_height=10", "--resize-width", "12", "--backend", "leveldb"], "leveldb_resized",
     "leveldb"),
    (["-gray", "-resize_height=10", "-resize_width=12", "-backend=leveldb"], "leveldb_gray",
     "leveldb"),
    (["--encoded"], "lmdb_encoded", "lmdb"),
])
def test_caffes_flag_spellings_give_caffes_database(flags, caffe_db, backend, tmp_path,
                                                    monkeypatch, capsys):
    data_fixture(tmp_path, monkeypatch)
    assert main(["convert-imageset", *flags, "images/", "images/list.txt", "ours"]) == 0
    assert "Processed 6 files." in capsys.readouterr().out
    same_records("ours", f"caffe/{caffe_db}", backend)


def test_shuffle_and_check_size(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    for out in ("a", "b"):
        assert main(["convert-imageset", "--shuffle", "--seed", "1", "images/",
                     "images/list.txt", out]) == 0
    same_records("a", "b", "lmdb")
    assert main(["convert-imageset", "--check_size", "images/", "images/list.txt", "c"]) == 2
    assert not os.path.exists("c")


def test_the_console_script_runs_it(tmp_path, monkeypatch):
    data_fixture(tmp_path, monkeypatch)
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    subprocess.run([sys.executable, "-m", "caffe_import", "convert-imageset", "--encode_type",
                    "png", "-resize_height", "10", "-resize_width", "12", "images/",
                    "images/list.txt", "png"], check=True, env=env, capture_output=True)
    for (_, a), (_, b) in zip(ds.open_db("png").items(),
                              ds.open_db("caffe/lmdb_png_resized").items()):
        np.testing.assert_array_equal(ds.datum_image(ds.parse_datum(a)),
                                      ds.datum_image(ds.parse_datum(b)))
