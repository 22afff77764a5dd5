"""fcn_repro's own errors: dataset files raise DatasetError (a ValueError, not a Caffe format
error), and fcn-repro reports it on one line with exit status 2."""
from __future__ import annotations

import pytest

from caffe_import.errors import CaffeFormatError
from fcn_repro.cli import main
from fcn_repro.data import VOCSegmentation
from fcn_repro.data.synthetic import make_dataset
from fcn_repro.errors import DatasetError, DatasetLayoutError
from support import PACKAGE_CASES


def test_dataset_errors_are_value_errors_that_name_the_file(tmp_path):
    err = DatasetError("voc: split list is empty", path=tmp_path / "val.txt")
    assert isinstance(err, ValueError) and not isinstance(err, CaffeFormatError)
    assert str(err) == f"{tmp_path / 'val.txt'}: voc: split list is empty" and err.path
    assert issubclass(DatasetLayoutError, DatasetError) and issubclass(DatasetLayoutError, FileNotFoundError)
    with pytest.raises(DatasetLayoutError, match="JPEGImages"):
        VOCSegmentation(tmp_path / "absent", "val")


def test_fcn_repro_reports_a_dataset_error_on_one_line(tmp_path, capsys):
    root = make_dataset("voc", tmp_path / "voc", n=1)
    (root / "ImageSets" / "Segmentation" / "val.txt").write_text("\n")
    net = PACKAGE_CASES / "voc_fcn8s_narrow"
    rc = main(["eval", "--net", str(net / "net.prototxt"), "--weights", str(net / "weights.caffemodel"),
               "--dataset", "voc", "--root", str(root), "--split", "val", "--no-progress",
               "-o", str(tmp_path / "m.json")])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and err == [f"fcn-repro: error: {root / 'ImageSets' / 'Segmentation' / 'val.txt'}: "
                               "voc: split list is empty"]
