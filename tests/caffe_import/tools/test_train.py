"""caffe_import.tools.train: ``caffe train`` on a legacy project (HDF5Data, solver file),
Caffe's log lines in Caffe's order, snapshots and resuming."""
from __future__ import annotations

import os
import re
import subprocess
import sys

import numpy as np
import pytest
from support import ROOT
from support.caffe_project import write_project

from caffe_import.errors import UsageError
from caffe_import.io import read_weights
from caffe_import.tools.train import parse_gpus, train


@pytest.fixture
def project(tmp_path, monkeypatch):
    monkeypatch.chdir(write_project(tmp_path))  # Caffe opens every name from the cwd
    return tmp_path


def _messages(err: str) -> list[str]:
    """The messages of glog lines (``I1207 08:00:00.123456 12345 file.cpp:12] message``)."""
    out = []
    for line in err.splitlines():
        m = re.fullmatch(r"I\d{4} \d\d:\d\d:\d\d\.\d{6} +\d+ [a-z_]+\.cpp:\d+\] (.*)", line)
        assert m, f"not a glog line: {line!r}"
        out.append(m.group(1))
    return out


def test_log_lines_in_caffes_order(project, capsys):
    train("solver.prototxt", weights="init.caffemodel")
    lines = _messages(capsys.readouterr().err)
    heads = [re.split(r" = | \([\d.e+-]+ iter/s", m)[0].strip() for m in lines]
    i = heads.index("Iteration 4, Testing net (#0)")
    assert heads[i:i + 6] == ["Iteration 4, Testing net (#0)", "Test net output #0: accuracy",
                              "Test net output #1: loss", "Iteration 4", "Train net output #0: loss",
                              "Iteration 4, lr"], heads[i:i + 6]
    assert heads[:6] == ["Use CPU.", "Finetuning from init.caffemodel", "Starting Optimization",
                         "Solving TinyLegacy", "Learning Rate Policy: inv",
                         "Iteration 0, Testing net (#0)"]
    assert "Snapshotting to binary proto file snap/tiny_iter_4.caffemodel" in lines
    assert "Snapshotting solver state to binary proto file snap/tiny_iter_4.solverstate" in lines
    assert heads[-6:] == ["Iteration 8, loss", "Iteration 8, Testing net (#0)",
                          "Test net output #0: accuracy", "Test net output #1: loss",
                          "Optimization Done.", "Optimization Done."], heads[-6:]
    assert re.fullmatch(r"Iteration 2 \([\d.e+-]+ iter/s, [\d.e+-]+s/2 iters\), loss = [\d.e+-]+",
                        lines[heads.index("Iteration 2")])
    assert re.fullmatch(r"Test net output #1: loss = ([\d.e+-]+) \(\* 1 = \1 loss\)",
                        lines[heads.index("Test net output #1: loss")].strip())


def test_glog_minloglevel_silences_the_log(project, capsys, monkeypatch):
    monkeypatch.setenv("GLOG_minloglevel", "1")
    train("solver.prototxt", weights="init.caffemodel")
    assert capsys.readouterr().err == ""


def test_resume_from_a_snapshot_continues_the_run(project, capsys):
    """Rows 32, batch 8: at iteration 4 the data are back at the first row, so a run resumed
    there sees what the unbroken run saw, and ends with the same weights."""
    train("solver.prototxt", weights="init.caffemodel")
    unbroken = read_weights("snap/tiny_iter_8.caffemodel")
    (project / "snap" / "tiny_iter_8.caffemodel").unlink()
    solver = train("solver.prototxt", snapshot="snap/tiny_iter_4.solverstate")
    assert solver.iter == 8
    assert "Resuming from snap/tiny_iter_4.solverstate" in capsys.readouterr().err
    resumed = read_weights("snap/tiny_iter_8.caffemodel")
    for name, blobs in unbroken.items():
        for a, b in zip(blobs, resumed[name]):
            np.testing.assert_allclose(b, a, rtol=1e-6, atol=1e-7)


def test_hdf5_snapshots_resume_too(tmp_path, monkeypatch):
    monkeypatch.chdir(write_project(tmp_path, snapshot_format="HDF5"))
    train("solver.prototxt", weights="init.caffemodel")
    assert (tmp_path / "snap" / "tiny_iter_4.caffemodel.h5").is_file()
    unbroken = read_weights("snap/tiny_iter_8.caffemodel.h5")
    solver = train("solver.prototxt", snapshot="snap/tiny_iter_4.solverstate.h5")
    assert solver.iter == 8
    resumed = read_weights("snap/tiny_iter_8.caffemodel.h5")
    np.testing.assert_allclose(resumed["ip2"][0], unbroken["ip2"][0], rtol=1e-6, atol=1e-7)


def test_snapshot_after_train_and_solver_weights_field(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(write_project(tmp_path, max_iter=6, snapshot=4, test_interval=None,
                                    weights='"init.caffemodel"'))
    solver = train("solver.prototxt")
    assert solver.iter == 6
    assert (tmp_path / "snap" / "tiny_iter_6.caffemodel").is_file()  # after the last iteration
    # the solver's own weights field was used: training started from init.caffemodel
    assert "Finetuning from init.caffemodel" in capsys.readouterr().err
    first = read_weights("snap/tiny_iter_4.caffemodel")["ip1"][0]
    assert np.abs(first - read_weights("init.caffemodel")["ip1"][0]).max() < 0.5


def test_weights_and_snapshot_together_are_refused(project):
    with pytest.raises(UsageError, match="not both"):
        train("solver.prototxt", weights="init.caffemodel", snapshot="x.solverstate")


def test_gpu_flag():
    assert parse_gpus(None) == [] and parse_gpus("") == []
    assert parse_gpus("0") == [0] and parse_gpus("0,1") == [0, 1]
    with pytest.raises(UsageError, match="-gpu"):
        parse_gpus("first")


def test_level_and_stage_select_the_train_net(tmp_path, monkeypatch):
    """Caffe's -level / -stage set the train net's state: a layer for stage 'wide' only."""
    project = write_project(tmp_path)
    net = (project / "net.prototxt").read_text().replace(
        'layer { name: "relu1"', 'layer { name: "drop" type: "Dropout" bottom: "ip1" top: "ip1" '
        'include { phase: TRAIN stage: "wide" } }\nlayer { name: "relu1"')
    (project / "net.prototxt").write_text(net)
    monkeypatch.chdir(project)
    plain = train("solver.prototxt", weights="init.caffemodel")
    assert "drop" not in plain.net.layer_dict
    staged = train("solver.prototxt", weights="init.caffemodel", stages=["wide"], level=1)
    assert "drop" in staged.net.layer_dict and staged.param.train_state.level == 1


def test_two_processes_train_as_one_with_both_batches(tmp_path):
    """Caffe's multi-GPU sync under torchrun (gloo on the CPU, 2 processes, batch 4 each): the
    solvers share the rows and average their gradients, so the weights equal one solver's
    with batch 8 on the same rows."""
    single = write_project(tmp_path / "single", test_interval=None)
    subprocess.run([sys.executable, "-m", "caffe_import", "train", "-solver", "solver.prototxt",
                    "-weights", "init.caffemodel"], cwd=single, check=True, capture_output=True,
                   env={**os.environ, "PYTHONPATH": str(ROOT)}, timeout=300)
    double = write_project(tmp_path / "double", test_interval=None)
    net = (double / "net.prototxt").read_text()
    (double / "net.prototxt").write_text(net.replace("batch_size: 8", "batch_size: 4"))
    run = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                          "--nproc_per_node=2", "-m", "caffe_import", "train",
                          "-solver", "solver.prototxt", "-weights", "init.caffemodel"],
                         cwd=double, capture_output=True, text=True, timeout=600,
                         env={**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"})
    errors = [line for line in run.stderr.splitlines() if "error" in line.lower()]
    assert run.returncode == 0, "\n".join(errors[:20]) + "\n" + run.stderr[-3000:]
    assert run.stderr.count("Optimization Done.") == 2  # the root's lines only
    ours = read_weights(double / "snap" / "tiny_iter_8.caffemodel")
    ref = read_weights(single / "snap" / "tiny_iter_8.caffemodel")
    for name in ref:
        for a, b in zip(ours[name], ref[name]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_a_folder_prefix_gets_the_solver_files_stem(tmp_path, monkeypatch):
    """Caffe's UpgradeSnapshotPrefixProperty: a snapshot_prefix naming an existing folder
    (with or without '/') becomes that folder plus the solver file's stem."""
    monkeypatch.chdir(write_project(tmp_path, snapshot_prefix='"snap"', max_iter=4,
                                    test_interval=None))
    train("solver.prototxt", weights="init.caffemodel")
    assert (tmp_path / "snap" / "solver_iter_4.caffemodel").is_file()
    assert (tmp_path / "snap" / "solver_iter_4.solverstate").is_file()


def test_iter_size_takes_its_batches_from_the_data_layer(tmp_path, monkeypatch):
    """iter_size 2 with batch 4 reads the rows batch 8 reads in one pass: the same weights."""
    single = write_project(tmp_path / "single", test_interval=None)
    monkeypatch.chdir(single)
    train("solver.prototxt", weights="init.caffemodel")
    accumulated = write_project(tmp_path / "acc", test_interval=None, iter_size=2)
    net = (accumulated / "net.prototxt").read_text()
    (accumulated / "net.prototxt").write_text(net.replace("batch_size: 8", "batch_size: 4"))
    monkeypatch.chdir(accumulated)
    train("solver.prototxt", weights="init.caffemodel")
    ours = read_weights(accumulated / "snap" / "tiny_iter_8.caffemodel")
    ref = read_weights(single / "snap" / "tiny_iter_8.caffemodel")
    for name in ref:
        for a, b in zip(ours[name], ref[name]):
            np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


def test_display_shows_the_loss_averaged_over_average_loss(project, capsys):
    (project / "solver.prototxt").write_text((project / "solver.prototxt").read_text()
                                             .replace("display: 2", "display: 1")
                                             + "average_loss: 2\n")
    train("solver.prototxt", weights="init.caffemodel")
    lines = _messages(capsys.readouterr().err)
    raw = [float(m.split(" = ")[1].split(" ")[0]) for m in lines
           if m.startswith("    Train net output #0")]
    shown = [float(m.rsplit(" = ", 1)[1]) for m in lines
             if re.match(r"Iteration \d+ \(", m)]
    assert shown[0] == pytest.approx(raw[0], rel=1e-5)
    for k in range(1, len(raw)):
        assert shown[k] == pytest.approx((raw[k - 1] + raw[k]) / 2, rel=1e-5)


def test_random_seed_seeds_the_shuffles(tmp_path, monkeypatch):
    """Caffe's random_seed: two runs with HDF5Data's shuffle end with the same weights."""
    project = write_project(tmp_path, random_seed=7, test_interval=None)
    net = (project / "net.prototxt").read_text()
    (project / "net.prototxt").write_text(net.replace("batch_size: 8", "batch_size: 8 shuffle: true"))
    monkeypatch.chdir(project)
    finals = []
    for _ in range(2):
        train("solver.prototxt", weights="init.caffemodel")
        finals.append(read_weights("snap/tiny_iter_8.caffemodel")["ip2"][0])
    np.testing.assert_array_equal(finals[0], finals[1])
