"""``caffe-import time`` (module ``cli/timing.py``): Caffe's ``caffe time`` command line."""
from __future__ import annotations

from support.caffe_project import write_project

from caffe_import.cli import main


def test_caffe_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(write_project(tmp_path))
    assert main(["time", "-model", "net.prototxt", "-iterations", "1", "-phase", "TEST"]) == 0
    err = capsys.readouterr().err
    assert "Testing for 1 iterations." in err and "*** Benchmark ends ***" in err
    assert "  accuracy\tforward: " in err  # a TEST-phase layer
