"""caffe_import.tools.score: ``caffe test``'s lines and means on a net that reads its data."""
from __future__ import annotations

import re

import numpy as np
import pytest
from support.caffe_project import write_project

from caffe_import.net import CaffeNet
from caffe_import.tools.score import score


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(write_project(tmp_path))
    return tmp_path


def test_batches_then_means_as_caffe_logs_them(project, capsys):
    means = score("net.prototxt", "init.caffemodel", iterations=3)
    err = capsys.readouterr().err
    messages = [line.split("] ", 1)[1] for line in err.splitlines()]
    assert messages[:2] == ["Use CPU.", "Running for 3 iterations."]
    batches = [m for m in messages if m.startswith("Batch ")]
    assert [b.split(" = ")[0] for b in batches] == [
        f"Batch {i}, {name}" for i in range(3) for name in ("accuracy", "loss")]
    assert list(means) == ["accuracy", "loss"]  # Caffe's outputs: sorted by name
    # the same forwards by hand: 12 test rows, batch 6, three batches wrap around
    net = CaffeNet("net.prototxt", "init.caffemodel", data=True)
    runs = [net() for _ in range(3)]
    loss = np.mean([float(r["loss"]) for r in runs], dtype=np.float32)
    np.testing.assert_allclose(means["loss"], loss, rtol=1e-6)
    assert f"loss = {float(means['loss'][0]):g} (* 1 = {float(means['loss'][0]):g} loss)" in messages
    assert re.fullmatch(r"accuracy = [\d.e+-]+", [m for m in messages if m.startswith("accuracy")][0])
    assert messages[-3].startswith("Loss: ")
