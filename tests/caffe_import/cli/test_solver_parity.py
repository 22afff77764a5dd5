"""Our solver against real Caffe's SGD trajectory on a narrow FCN-32s (5 steps, lr drops)."""
from __future__ import annotations

import re

import pytest

from support import case_dir

pytest.importorskip("caffe_import.net")


def test_every_step_of_the_caffe_trajectory_is_within_tolerance(capsys):
    from caffe_import.cli import main
    rc = main(["solver-parity", str(case_dir("solver_fcn32s_narrow"))])
    captured = capsys.readouterr()
    out = captured.out.strip().splitlines()
    assert out, captured.err
    assert out[-1].startswith("5/5 steps within tolerance"), "\n".join(out)
    assert rc == 0
    assert len([line for line in out if re.match(r"step \d+: .* ok$", line)]) == 5


def test_missing_files_are_reported_not_a_traceback(tmp_path, capsys):
    from caffe_import.cli import main
    assert main(["solver-parity", str(tmp_path)]) == 2
    assert "solver.prototxt" in capsys.readouterr().err


def test_solver_builds_its_train_net_from_the_solver_file():
    import h5py
    import torch

    from caffe_import.solver import Solver
    case = case_dir("solver_fcn32s_narrow")
    solver = Solver(case / "solver.prototxt")  # train_net: "train.prototxt", next to the solver
    solver.net.load_weights(case / "init.caffemodel")
    with h5py.File(case / "reference.h5", "r") as f:
        step = f["steps"]["0"]
        loss = solver.step(1, inputs={k: torch.from_numpy(step["inputs"][k][()]) for k in step["inputs"]})
        assert loss == pytest.approx(float(step.attrs["loss"]), rel=1e-4)
    assert solver.iter == 1 and solver.rate == pytest.approx(1e-7)
