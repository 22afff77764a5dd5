"""Solver parity: our solver's steps against Caffe's recorded trajectory, as a library call."""
from __future__ import annotations

from caffe_import.parity import check_solver_parity
from support import case_dir


def test_solver_parity_is_a_library_call_that_names_the_worst_param():
    seen = []
    report = check_solver_parity(case_dir("solver_fcn32s_narrow"), rel_l2=1e-12, on_step=seen.append)
    assert seen == report.steps and len(report.steps) == 5
    assert not report.ok and report.summary.startswith("0/5 steps within tolerance")
    assert all(s.worst_param and not s.missing and s.line().endswith("FAIL") for s in report.steps)
