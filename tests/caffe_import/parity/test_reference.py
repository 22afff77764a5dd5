"""The stored-activation file format: names percent-encoded and round-tripped, unreadable
files raise format errors that name the file."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from caffe_import.cli import main
from caffe_import.errors import CaffeFormatError
from caffe_import.parity import StoredActivations, read_reference, write_reference
from support.parity_cases import SMALL, files


def test_reference_shapes_tells_what_a_file_holds_without_reading_it(tmp_path):
    from caffe_import.parity.reference import reference_shapes

    ref = StoredActivations(attrs={"phase": "TRAIN", "caffe": "us"})
    ref.inputs["data"] = np.ones((1, 2), np.float32)
    ref.blobs["score/fr"] = np.arange(3, dtype=np.float32)
    ref.params["conv"] = {0: np.ones((2, 2), np.float32), 1: np.zeros(2, np.float32)}
    write_reference(tmp_path / "r.h5", ref)
    held = reference_shapes(tmp_path / "r.h5")
    assert held["phase"] == "train" and held["attrs"]["caffe"] == "us"
    assert held["inputs"] == {"data": [1, 2]} and held["blobs"] == {"score/fr": [3]}
    assert held["params"] == {"conv": [[2, 2], [2]]} and "diffs" not in held
    with h5py.File(tmp_path / "w.h5", "w") as f:
        f.create_group("data")
    with pytest.raises(CaffeFormatError, match="not a stored-activation file"):
        reference_shapes(tmp_path / "w.h5")


def test_names_are_percent_encoded_and_round_trip(tmp_path):
    ref = StoredActivations(attrs={"phase": "TEST"})
    ref.inputs["data"] = np.ones((1, 2), np.float32)
    ref.blobs["score/fr.1"] = np.arange(3, dtype=np.float32)
    ref.params["conv/1"] = {0: np.ones((2, 2), np.float32), 1: np.zeros(2, np.float32)}
    write_reference(tmp_path / "r.h5", ref)
    with h5py.File(tmp_path / "r.h5") as f:
        assert "score%2Ffr.1" in f["blobs"] and "conv%2F1" in f["params"]
    back = read_reference(tmp_path / "r.h5")
    assert list(back.blobs) == ["score/fr.1"] and list(back.params["conv/1"]) == [0, 1]
    assert back.phase == "test" and [p.name for p in tmp_path.iterdir()] == ["r.h5"]


def test_unreadable_references_raise_format_errors(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(CaffeFormatError, match="junk.h5"):
        read_reference(junk)
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(CaffeFormatError, match="/blobs"):
        read_reference(tmp_path / "empty.h5")
    net, weights, _ = files(SMALL)
    assert main(["parity", str(net), str(weights), str(junk)]) == 2
    assert "junk.h5" in capsys.readouterr().err
