"""A legacy Caffe project end to end against BVLC Caffe: an image list made into an LMDB (train)
and a LevelDB (test) by ``convert-imageset``, their mean by ``compute-image-mean``, a LeNet
whose ``Data`` layers read them (``transform_param`` scale and ``mean_file``) trained by
``train -solver -weights``, resumed with ``-snapshot``, scored by ``test`` and timed by
``time``: the commands the README writes, run in a fresh folder, against what Caffe's own
``convert_imageset``, ``compute_image_mean`` and ``caffe train/test`` made
(tests/fixtures/caffe_tools/lenet_lmdb, README there)."""
from __future__ import annotations

import contextlib
import hashlib
import io
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
from caffe_import.io.datasets import open_db

CASE = ROOT / "tests" / "fixtures" / "caffe_tools" / "lenet_lmdb"
CAFFE = CASE / "caffe"
INPUTS = ("images", "lenet_solver.prototxt", "lenet_train_test.prototxt", "init.caffemodel")
COMMANDS = {  # log name: the command line after ``caffe-import``
    "convert_train": "convert-imageset --gray images/ images/train.txt train_lmdb",
    "convert_test": "convert-imageset --gray --backend leveldb images/ images/test.txt test_leveldb",
    "mean": "compute-image-mean train_lmdb mean.binaryproto",
    "train": "train -solver lenet_solver.prototxt -weights init.caffemodel",
    "resume": "train -solver lenet_solver.prototxt -snapshot snap/lenet_iter_20.solverstate",
    "test": "test -model lenet_train_test.prototxt -weights full/lenet_iter_40.caffemodel "
            "-iterations 2",
    "time": "time -model lenet_train_test.prototxt -iterations 2",
}


@pytest.fixture(scope="module")
def project(tmp_path_factory) -> Path:
    """The project's folder after every command of ``COMMANDS`` ran in it, in order, each
    one's stderr kept in ``<name>.log``; the full run's snapshots moved to ``full/`` before
    the resume (from our own iteration-20 state) writes ``snap/`` again."""
    root = tmp_path_factory.mktemp("legacy")
    for name in INPUTS:
        (shutil.copytree if (CASE / name).is_dir() else shutil.copy)(CASE / name, root / name)
    (root / "snap").mkdir()
    with pytest.MonkeyPatch.context() as mp:
        mp.chdir(root)
        mp.delenv("GLOG_minloglevel", raising=False)
        mp.setenv("GLOG_log_year_in_prefix", "false")
        for name, command in COMMANDS.items():
            if name == "resume":
                shutil.copytree("snap", "full")
                for old in Path("snap").glob("lenet_iter_40.*"):
                    old.unlink()
            err = io.StringIO()
            with contextlib.redirect_stderr(err):
                assert main(command.split()) == 0, command
            Path(f"{name}.log").write_text(err.getvalue())
    return root


def _digests(path: Path, backend: str) -> str:
    """``key<TAB>sha256(value)`` per record, in key order (the fixture's ``*.sha256``)."""
    return "".join(f"{k.decode()}\t{hashlib.sha256(v).hexdigest()}\n"
                   for k, v in open_db(path, backend).items())


def test_convert_imageset_writes_caffes_records(project):
    assert _digests(project / "train_lmdb", "lmdb") == (CAFFE / "train_lmdb.sha256").read_text()
    assert _digests(project / "test_leveldb", "leveldb") == \
        (CAFFE / "test_leveldb.sha256").read_text()


def test_compute_image_mean_writes_caffes_file(project):
    assert (project / "mean.binaryproto").read_bytes() == (CAFFE / "mean.binaryproto").read_bytes()


def test_train_matches_caffe_train(project):
    log, caffe_log = (project / "train.log").read_text(), (CAFFE / "train.log").read_text()
    assert_close(numbers(log), numbers(caffe_log))
    assert_close(numbers(log, "sgd_solver.cpp"), numbers(caffe_log, "sgd_solver.cpp"))
    assert_weights_close(project / "full" / "lenet_iter_20.caffemodel",
                         CAFFE / "lenet_iter_20.caffemodel")
    assert_weights_close(project / "full" / "lenet_iter_40.caffemodel",
                         CAFFE / "lenet_iter_40.caffemodel")
    assert_solverstate_close(project / "full" / "lenet_iter_20.solverstate",
                             CAFFE / "lenet_iter_20.solverstate")


def test_resume_matches_caffes_resume(project):
    """Caffe's Data layer starts again at the first record on a resume; at iteration 20 the
    full run's cursor is there too (20 x 16 = 8 x 40 records), so both end on one model."""
    log = (project / "resume.log").read_text()
    assert "Resuming from snap/lenet_iter_20.solverstate" in log
    assert_close(numbers(log), numbers((CAFFE / "resume.log").read_text()))
    assert_weights_close(project / "snap" / "lenet_iter_40.caffemodel",
                         CAFFE / "lenet_iter_40.caffemodel")


def test_test_matches_caffe_test(project):
    assert score_lines((project / "test.log").read_text()) == \
        score_lines((CAFFE / "test.log").read_text())


def test_parse_log_reads_our_log_into_caffes_columns(project, tmp_path):
    shutil.copy(project / "train.log", tmp_path / "ours.log")
    shutil.copy(CAFFE / "train.log", tmp_path / "caffe.log")
    assert_parse_log_same(tmp_path / "ours.log", tmp_path / "caffe.log")


def test_time_runs_the_net_reading_its_database(project):
    log = (project / "time.log").read_text()
    assert "mnist\tforward: " in log and "Average Forward-Backward: " in log
