"""caffe_import.tools.timing: ``caffe time``'s per-layer lines."""
from __future__ import annotations

import pytest
from support.caffe_project import write_project

from caffe_import.tools.timing import time_net


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(write_project(tmp_path))
    return tmp_path


@pytest.mark.parametrize("phase", ["train", "test"])
def test_every_layer_timed_forward_and_backward(project, capsys, phase):
    times = time_net("net.prototxt", iterations=2, phase=phase)
    expected = ["data", "ip1", "relu1", "ip2", "loss"]
    if phase == "test":  # Accuracy reads ip2 and label too: Caffe inserts split layers
        expected = ["data", "label_data_1_split", "ip1", "relu1", "ip2", "ip2_ip2_0_split",
                    "accuracy", "loss"]
    assert list(times) == expected
    assert all(f >= 0 and b >= 0 for f, b in times.values())
    messages = [line.split("] ", 1)[1] for line in capsys.readouterr().err.splitlines()]
    assert messages[:4] == ["Use CPU.", "Performing Forward", messages[2], "Performing Backward"]
    assert messages[2].startswith("Initial loss: ")
    assert "Iteration: 2 forward-backward time: " in "\n".join(messages)
    assert any(m.startswith("       ip1\tforward: ") and m.endswith(" ms.") for m in messages)
    assert any(m.startswith("       ip1\tbackward: ") for m in messages)
    assert messages[-1] == "*** Benchmark ends ***"
