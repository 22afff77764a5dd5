"""``caffe-import test`` (module ``cli/score.py``): Caffe's ``caffe test`` command line."""
from __future__ import annotations

from support.caffe_project import write_project

from caffe_import.cli import main


def test_caffe_flags_and_lines(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(write_project(tmp_path))
    assert main(["test", "-model", "net.prototxt", "-weights", "init.caffemodel",
                 "-iterations", "2"]) == 0
    out = capsys.readouterr()
    assert out.out == ""
    messages = [line.split("] ", 1)[1] for line in out.err.splitlines()]
    assert "Running for 2 iterations." in messages
    assert [m.split(" = ")[0] for m in messages if m.startswith("Batch")] == [
        "Batch 0, accuracy", "Batch 0, loss", "Batch 1, accuracy", "Batch 1, loss"]


def test_iterations_default_to_caffes_50(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(write_project(tmp_path))
    assert main(["test", "--model", "net.prototxt", "--weights", "init.caffemodel"]) == 0
    assert "Running for 50 iterations." in capsys.readouterr().err
