"""caffe-import train / test against BVLC Caffe's own ``caffe train`` / ``caffe test`` on a
LeNet reading HDF5 files (tests/fixtures/caffe_tools/lenet_hdf5, README there): the same
losses and outputs in the log, the same weights at each snapshot, a resume from Caffe's own
solver state, and Caffe's ``parse_log.py`` reading our log into Caffe's columns."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from support import ROOT
from support.caffe_log import (
    assert_close,
    assert_parse_log_same,
    assert_solverstate_close,
    assert_weights_close,
    numbers,
    score_lines,
)

from caffe_import.cli import main

FIXTURE = ROOT / "tests" / "fixtures" / "caffe_tools"
CASE = FIXTURE / "lenet_hdf5"
CAFFE = CASE / "caffe"
INPUTS = ("lenet_solver.prototxt", "lenet_train_test.prototxt", "init.caffemodel", "data")


@pytest.fixture
def project(tmp_path, monkeypatch):
    for name in INPUTS:
        (shutil.copytree if (CASE / name).is_dir() else shutil.copy)(CASE / name, tmp_path / name)
    (tmp_path / "snap").mkdir()
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _run(capsys, *argv: str) -> str:
    assert main(list(argv)) == 0
    err = capsys.readouterr().err
    Path("ours.log").write_text(err)
    return err


def test_train_matches_caffe_train(project, capsys):
    log = _run(capsys, "train", "-solver", "lenet_solver.prototxt", "-weights", "init.caffemodel")
    caffe_log = (CAFFE / "train.log").read_text()
    assert_close(numbers(log), numbers(caffe_log))
    assert_close(numbers(log, "sgd_solver.cpp"), numbers(caffe_log, "sgd_solver.cpp"))  # lr lines
    assert_weights_close("snap/lenet_iter_30.caffemodel", CAFFE / "lenet_iter_30.caffemodel")
    assert_weights_close("snap/lenet_iter_60.caffemodel", CAFFE / "lenet_iter_60.caffemodel")


def test_our_solverstate_is_caffes(project, capsys):
    _run(capsys, "train", "--solver", "lenet_solver.prototxt", "--weights", "init.caffemodel")
    caffe = assert_solverstate_close("snap/lenet_iter_30.solverstate",
                                     CAFFE / "lenet_iter_30.solverstate")
    assert (caffe.iter, caffe.current_step, caffe.learned_net) == \
        (30, 0, "snap/lenet_iter_30.caffemodel")
    assert len(caffe.history) == 8


def test_resume_from_caffes_solverstate_matches_caffe(project, capsys):
    for name in ("lenet_iter_30.caffemodel", "lenet_iter_30.solverstate"):
        shutil.copy(CAFFE / name, project / "snap" / name)
    log = _run(capsys, "train", "-solver", "lenet_solver.prototxt",
               "-snapshot", "snap/lenet_iter_30.solverstate")
    assert "Resuming from snap/lenet_iter_30.solverstate" in log
    assert_close(numbers(log), numbers((CAFFE / "resume.log").read_text()))
    assert_weights_close("snap/lenet_iter_60.caffemodel", CAFFE / "lenet_iter_60.caffemodel")


def test_test_matches_caffe_test(project, capsys):
    log = _run(capsys, "test", "-model", "lenet_train_test.prototxt",
               "-weights", str(CAFFE / "lenet_iter_60.caffemodel"), "-iterations", "2")
    assert score_lines(log) == score_lines((CAFFE / "test.log").read_text())


def test_parse_log_reads_our_log_into_caffes_columns(project, capsys, tmp_path):
    _run(capsys, "train", "-solver", "lenet_solver.prototxt", "-weights", "init.caffemodel")
    shutil.copy(CAFFE / "train.log", tmp_path / "caffe.log")
    assert_parse_log_same(project / "ours.log", tmp_path / "caffe.log")
