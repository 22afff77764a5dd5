"""fcn-repro synthetic-data: the random datasets are a verb of the installed command."""
from __future__ import annotations

from fcn_repro.cli import main
from fcn_repro.data import VOCSegmentation


def test_writes_a_dataset_the_readers_take(tmp_path, capsys):
    assert main(["synthetic-data", "voc", str(tmp_path / "voc"), "--n", "2"]) == 0
    assert capsys.readouterr().out.strip() == f"voc: {tmp_path / 'voc'}"
    assert len(VOCSegmentation(tmp_path / "voc", "seg11valid")) == 2


def test_all_writes_one_folder_per_layout(tmp_path, capsys):
    assert main(["synthetic-data", "all", str(tmp_path), "--n", "1"]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nyud", "pascalcontext", "sbd", "siftflow", "voc"]


def test_refuses_a_folder_with_files_and_impossible_counts(tmp_path, capsys):
    (tmp_path / "VOC2011").mkdir()
    (tmp_path / "VOC2011" / "JPEGImages").mkdir()
    assert main(["synthetic-data", "voc", str(tmp_path / "VOC2011")]) == 2
    assert "not empty" in capsys.readouterr().err
    assert main(["synthetic-data", "voc", str(tmp_path / "new"), "--n", "0"]) == 2
    assert main(["synthetic-data", "voc", str(tmp_path / "new"), "--n", "100000"]) == 2
    err = capsys.readouterr().err
    assert "at least 1" in err and "at most 736" in err and "Traceback" not in err
