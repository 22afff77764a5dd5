"""caffe-import train / test against BVLC Caffe's own ``caffe train`` / ``caffe test`` on a
LeNet reading HDF5 files (tests/fixtures/caffe_tools/lenet_hdf5, README there): the same
losses and outputs in the log, the same weights at each snapshot, a resume from Caffe's own
solver state, and Caffe's ``parse_log.py`` reading our log into Caffe's columns."""
from __future__ import annotations

import csv
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from support import ROOT
from support.compare import rel_l2

from caffe_import.cli import main
from caffe_import.io import read_weights
from caffe_import.proto import caffe_pb2

FIXTURE = ROOT / "tests" / "fixtures" / "caffe_tools"
CASE = FIXTURE / "lenet_hdf5"
CAFFE = CASE / "caffe"
INPUTS = ("lenet_solver.prototxt", "lenet_train_test.prototxt", "init.caffemodel", "data")
REL = 1e-4
GLOG = re.compile(r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ ([a-z_]+\.cpp):\d+\] (.*)")


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


def _numbers(log: str, source: str = "solver.cpp") -> list[tuple[str, float]]:
    """(what, value) of every solver line carrying a number: display losses, train and test
    outputs, the final loss (Caffe's own lines of net setup are left out)."""
    out = []
    for line in log.splitlines():
        m = GLOG.fullmatch(line)
        if not m or m.group(1) != source:
            continue
        msg = re.sub(r" \([\d.e+-]+ iter/s, [\d.e+-]+s/\d+ iters\)", "", m.group(2).strip())
        v = re.search(r" = ([-\d.e+]+)", msg)
        if v:
            out.append((msg[:v.start()], float(v.group(1))))
    return out


def _close(ours, caffe) -> None:
    assert [k for k, _ in ours] == [k for k, _ in caffe]
    for (what, a), (_, b) in zip(ours, caffe):
        assert abs(a - b) <= REL * abs(b) + 1e-6, (what, a, b)


def _weights_close(ours_path: str, caffe_path: Path) -> None:
    ours, caffe = read_weights(ours_path), read_weights(caffe_path)
    assert list(ours) == list(caffe)
    for name in caffe:
        for a, b in zip(ours[name], caffe[name]):
            assert rel_l2(a, b) < REL, name


def test_train_matches_caffe_train(project, capsys):
    log = _run(capsys, "train", "-solver", "lenet_solver.prototxt", "-weights", "init.caffemodel")
    caffe_log = (CAFFE / "train.log").read_text()
    _close(_numbers(log), _numbers(caffe_log))
    _close(_numbers(log, "sgd_solver.cpp"), _numbers(caffe_log, "sgd_solver.cpp"))  # lr lines
    _weights_close("snap/lenet_iter_30.caffemodel", CAFFE / "lenet_iter_30.caffemodel")
    _weights_close("snap/lenet_iter_60.caffemodel", CAFFE / "lenet_iter_60.caffemodel")


def test_our_solverstate_is_caffes(project, capsys):
    _run(capsys, "train", "--solver", "lenet_solver.prototxt", "--weights", "init.caffemodel")
    ours, caffe = caffe_pb2.SolverState(), caffe_pb2.SolverState()
    ours.ParseFromString(Path("snap/lenet_iter_30.solverstate").read_bytes())
    caffe.ParseFromString((CAFFE / "lenet_iter_30.solverstate").read_bytes())
    assert (ours.iter, ours.current_step, ours.learned_net) == \
        (caffe.iter, caffe.current_step, caffe.learned_net) == (30, 0, "snap/lenet_iter_30.caffemodel")
    assert len(ours.history) == len(caffe.history) == 8
    for a, b in zip(ours.history, caffe.history):
        assert list(a.shape.dim) == list(b.shape.dim)
        assert rel_l2(np.array(a.data), np.array(b.data)) < REL


def test_resume_from_caffes_solverstate_matches_caffe(project, capsys):
    for name in ("lenet_iter_30.caffemodel", "lenet_iter_30.solverstate"):
        shutil.copy(CAFFE / name, project / "snap" / name)
    log = _run(capsys, "train", "-solver", "lenet_solver.prototxt",
               "-snapshot", "snap/lenet_iter_30.solverstate")
    assert "Resuming from snap/lenet_iter_30.solverstate" in log
    _close(_numbers(log), _numbers((CAFFE / "resume.log").read_text()))
    _weights_close("snap/lenet_iter_60.caffemodel", CAFFE / "lenet_iter_60.caffemodel")


def _test_lines(log: str) -> list[str]:
    lines = [m.group(2) for m in map(GLOG.fullmatch, log.splitlines())
             if m and m.group(1) == "caffe.cpp"]
    return lines[lines.index("Running for 2 iterations."):]


def test_test_matches_caffe_test(project, capsys):
    log = _run(capsys, "test", "-model", "lenet_train_test.prototxt",
               "-weights", str(CAFFE / "lenet_iter_60.caffemodel"), "-iterations", "2")
    assert _test_lines(log) == _test_lines((CAFFE / "test.log").read_text())


def _parse_log(log: Path) -> tuple[list[dict], list[dict]]:
    """Caffe's tools/extra/parse_log.py (a copy, see the fixture README) run on ``log``."""
    subprocess.run([sys.executable, "-W", "ignore", str(FIXTURE / "parse_log" / "parse_log.py"),
                    str(log), str(log.parent)], check=True, capture_output=True)
    tables = []
    for kind in ("train", "test"):
        with open(f"{log}.{kind}") as f:
            tables.append(list(csv.DictReader(f)))
    return tables[0], tables[1]


def test_parse_log_reads_our_log_into_caffes_columns(project, capsys, tmp_path):
    _run(capsys, "train", "-solver", "lenet_solver.prototxt", "-weights", "init.caffemodel")
    shutil.copy(CAFFE / "train.log", tmp_path / "caffe.log")
    for ours, caffe in zip(_parse_log(project / "ours.log"), _parse_log(tmp_path / "caffe.log")):
        assert len(ours) == len(caffe) > 0
        for row, ref in zip(ours, caffe):
            assert list(row) == list(ref)  # the same columns
            assert row["NumIters"] == ref["NumIters"]
            for col in set(ref) - {"NumIters", "Seconds"}:
                assert float(row[col]) == pytest.approx(float(ref[col]), rel=REL, abs=1e-6)
