"""``caffe-import train``: Caffe's ``caffe train`` command line, Caffe's flag spellings."""
from __future__ import annotations

import os
import subprocess
import sys

from support import ROOT
from support.caffe_project import write_project

from caffe_import.cli import main


def test_a_legacy_script_needs_only_the_program_name_changed(tmp_path):
    """``caffe train -solver S -weights W`` as ``caffe-import train ...``: the console script,
    its own process, the log on stderr, the snapshots where the solver puts them."""
    write_project(tmp_path)
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    run = subprocess.run([sys.executable, "-m", "caffe_import", "train", "-solver",
                          "solver.prototxt", "-weights", "init.caffemodel"], cwd=tmp_path,
                         env=env, capture_output=True, text=True, timeout=300)
    assert run.returncode == 0, run.stderr
    assert run.stdout == ""
    assert "] Optimization Done." in run.stderr
    assert (tmp_path / "snap" / "tiny_iter_8.solverstate").is_file()


def test_double_dash_spellings_and_resume(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(write_project(tmp_path))
    assert main(["train", "--solver", "solver.prototxt", "--weights", "init.caffemodel"]) == 0
    assert main(["train", "--solver", "solver.prototxt",
                 "--snapshot", "snap/tiny_iter_4.solverstate"]) == 0
    assert "Resuming from snap/tiny_iter_4.solverstate" in capsys.readouterr().err


def test_a_missing_data_file_is_one_error_naming_layer_and_file(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(write_project(tmp_path))
    (tmp_path / "data" / "train1.h5").unlink()
    assert main(["train", "-solver", "solver.prototxt"]) == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert err.startswith("caffe-import: error: ") and "data/train1.h5" in err and "'data'" in err
