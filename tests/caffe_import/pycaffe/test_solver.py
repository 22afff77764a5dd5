"""caffe_import.pycaffe.solver: pycaffe's solvers give the library solver's (Caffe-exact)
updates, on pycaffe nets, with Caffe's files and call order."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe_import import pycaffe as caffe
from caffe_import.net import CaffeNet
from caffe_import.solver import Solver as LibrarySolver, load_solver_param
from support.pycaffe_nets import batch


@pytest.fixture
def in_tiny(tiny, monkeypatch):
    monkeypatch.chdir(tiny)  # Caffe opens the solver's net files relative to the cwd
    return tiny


def _pycaffe_solver(cls, x, y):
    s = cls("solver.prototxt")
    s.net.copy_from("weights.caffemodel")
    s.net.blobs["data"].data[...] = x
    s.net.blobs["label"].data[...] = y
    return s


@pytest.mark.parametrize("cls_name", ["SGDSolver", "NesterovSolver", "AdaGradSolver",
                                      "RMSPropSolver", "AdaDeltaSolver", "AdamSolver"])
def test_each_solver_class_matches_the_library_solver(in_tiny, cls_name):
    kind = cls_name[:-len("Solver")]
    x, y = batch()
    text = (in_tiny / "solver.prototxt").read_text()
    if kind in ("AdaGrad", "RMSProp"):  # Caffe refuses momentum for these
        text = text.replace("momentum: 0.9", "")
    (in_tiny / "solver.prototxt").write_text(text)
    s = _pycaffe_solver(getattr(caffe, cls_name), x, y)
    assert s.param.type == kind  # the class fixes the rule, as pycaffe's constructors do
    param = load_solver_param("solver.prototxt")
    param.type = kind
    ref_net = CaffeNet("train.prototxt", weights="weights.caffemodel", phase="train")
    ref = LibrarySolver(param, ref_net)
    s.step(3)
    ref.step(3, inputs={"data": torch.from_numpy(x), "label": torch.from_numpy(y)})
    assert s.iter == ref.iter == 3
    for name, blobs in s.net.params.items():
        for blob, p in zip(blobs, ref_net.params[name]):
            np.testing.assert_allclose(blob.data, p.detach().numpy(), rtol=1e-5, atol=1e-7)


def test_get_solver_follows_the_file_type(in_tiny):
    text = (in_tiny / "solver.prototxt").read_text() + 'type: "Adam"\n'
    (in_tiny / "adam.prototxt").write_text(text)
    assert type(caffe.get_solver("adam.prototxt")).__name__ == "AdamSolver"
    assert isinstance(caffe.get_solver("solver.prototxt"), caffe.SGDSolver)


def test_callbacks_apply_update_and_lr(in_tiny):
    x, y = batch()
    s = _pycaffe_solver(caffe.SGDSolver, x, y)
    calls = []
    s.add_callback(lambda: calls.append(("start", s.iter)),
                   lambda: calls.append(("ready", float(np.abs(s.net.params["ip"][0].diff).sum()))))
    s.step(1)
    assert calls[0] == ("start", 0) and calls[1][0] == "ready" and calls[1][1] > 0
    assert s.lr == pytest.approx(0.05)
    s.step(1)
    assert s.lr == pytest.approx(0.025)  # step policy: stepsize 2, gamma 0.5
    w = s.net.params["ip"][0].data.copy()
    s.net.clear_param_diffs()
    s.net.forward()
    s.net.backward()
    s.apply_update()  # Caffe's ApplyUpdate: the update, and iter counts it
    assert s.iter == 3 and not np.array_equal(w, s.net.params["ip"][0].data)


def test_snapshot_and_restore_continue_identically(in_tiny):
    x, y = batch()
    a = _pycaffe_solver(caffe.SGDSolver, x, y)
    a.step(2)
    a.snapshot()
    assert (in_tiny / "snap" / "tiny_iter_2.caffemodel").is_file()
    assert (in_tiny / "snap" / "tiny_iter_2.solverstate").is_file()
    a.step(2)
    b = caffe.SGDSolver("solver.prototxt")
    b.net.blobs["data"].data[...] = x
    b.net.blobs["label"].data[...] = y
    b.restore("snap/tiny_iter_2.solverstate")
    assert b.iter == 2
    b.step(2)
    for name in a.net.params:
        for pa, pb in zip(a.net.params[name], b.net.params[name]):
            np.testing.assert_array_equal(pa.data, pb.data)


def test_solve_and_test_nets(in_tiny):
    text = (in_tiny / "solver.prototxt").read_text()
    text = text.replace('train_net: "train.prototxt"',
                        'net: "train.prototxt"\ntest_iter: 2\ntest_interval: 2')
    (in_tiny / "both.prototxt").write_text(text)
    s = caffe.SGDSolver("both.prototxt")
    assert len(s.test_nets) == 1 and s.test_nets[0]._phase == caffe.TEST
    s.net.copy_from("weights.caffemodel")
    x, y = batch()
    s.net.blobs["data"].data[...] = x
    s.net.blobs["label"].data[...] = y
    s.solve()
    assert s.iter == 4
    assert (in_tiny / "snap" / "tiny_iter_4.caffemodel").is_file()  # snapshot_after_train
    # the test net shares the train weights (Solver::Test)
    np.testing.assert_array_equal(s.test_nets[0].params["ip"][0].data, s.net.params["ip"][0].data)


def test_the_update_is_left_in_the_diff(in_tiny):
    x, y = batch()
    s = _pycaffe_solver(caffe.SGDSolver, x, y)
    before = s.net.params["conv"][0].data.copy()
    s.step(1)
    np.testing.assert_allclose(s.net.params["conv"][0].diff,
                               before - s.net.params["conv"][0].data, rtol=1e-4, atol=1e-8)


def _display_solver(in_tiny, x, y):
    text = (in_tiny / "solver.prototxt").read_text().replace("display: 0",
                                                             "display: 2\naverage_loss: 2")
    (in_tiny / "display.prototxt").write_text(text)
    s = caffe.SGDSolver("display.prototxt")
    s.net.copy_from("weights.caffemodel")
    s.net.blobs["data"].data[...] = x
    s.net.blobs["label"].data[...] = y
    return s


def test_display_logs_caffes_lines_to_stderr(in_tiny, capsys, monkeypatch):
    """display: N prints Caffe's glog INFO lines on stderr every N iterations (loss averaged
    over average_loss iterations, train outputs, SGD's lr line); GLOG_minloglevel >= 1
    silences them."""
    import re

    monkeypatch.delenv("GLOG_minloglevel", raising=False)
    x, y = batch()
    ref = _display_solver(in_tiny, x, y)
    losses = []
    for _ in range(4):
        ref.step(1)  # each iteration's loss, read back from the blob
        losses.append(float(ref.net.blobs["loss"].data))
    capsys.readouterr()
    s = _display_solver(in_tiny, x, y)
    s.step(4)
    out, err = capsys.readouterr()
    assert out == ""
    lines = err.splitlines()
    prefix = re.compile(r"^I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [a-z_]+\.cpp:\d+\] ")
    assert all(prefix.match(line) for line in lines), lines
    body = [prefix.sub("", line) for line in lines]
    iters = [re.sub(r" \(.* iters\)", "", b) for b in body]
    smoothed = [losses[0], (losses[1] + losses[2]) / 2]  # Caffe's average_loss window
    assert iters == [
        f"Iteration 0, loss = {smoothed[0]:g}",
        f"    Train net output #0: loss = {losses[0]:g} (* 1 = {losses[0]:g} loss)",
        "Iteration 0, lr = 0.05",
        f"Iteration 2, loss = {smoothed[1]:g}",
        f"    Train net output #0: loss = {losses[2]:g} (* 1 = {losses[2]:g} loss)",
        "Iteration 2, lr = 0.025"]
    assert re.fullmatch(r"Iteration 2 \(\S+ iter/s, \S+s/2 iters\), loss = \S+", body[3])
    monkeypatch.setenv("GLOG_minloglevel", "1")
    s.step(2)
    assert capsys.readouterr().err == ""
