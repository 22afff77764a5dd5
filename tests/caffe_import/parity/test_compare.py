"""Comparison: the two measures of one array, failures as rows (never raised), the tolerance
from meta.json, the flags or the defaults."""
from __future__ import annotations

import json

import h5py
import numpy as np
import pytest

from caffe_import.cli import main
from caffe_import.parity import (DEFAULT_MAX_ABS, DEFAULT_REL_L2, Tolerance, check_parity,
                                 compare_arrays)
from support import TRAIN_CASES
from support.parity_cases import SMALL, copy_case


def test_missing_blob_shape_mismatch_and_nan_are_failing_rows(tmp_path):
    net, weights, ref = copy_case(SMALL, tmp_path)
    with h5py.File(ref, "r+") as f:
        f["blobs/ghost%2Fblob"] = np.zeros((2, 3), np.float32)  # a blob our net lacks
        sig = f["blobs/sigmoid"][()]
        del f["blobs/sigmoid"]
        f["blobs/sigmoid"] = sig[:, :2]                       # wrong shape
        elu = f["blobs/elu"][()]
        elu[0, 0, 0, 0] = np.nan
        f["blobs/elu"][...] = elu                            # NaN in the reference
    report = check_parity(str(net), str(weights), ref)
    bad = {r.name: r for r in report.failures}
    assert set(bad) == {"ghost/blob", "sigmoid", "elu"}
    assert bad["ghost/blob"].note == "missing in our run"
    assert bad["sigmoid"].note == "shape differs" and bad["sigmoid"].ours_shape == (2, 5, 6, 7)
    assert "NaN" in bad["elu"].note
    assert not report.ok and "FAIL" in report.table()


def test_compare_arrays_measures():
    tol = Tolerance(1e-5, 1e-4)
    ref = np.array([3.0, 4.0], np.float32)
    row = compare_arrays("blob", "x", np.array([3.0, 4.5]), ref, tol)
    assert row.rel_l2 == pytest.approx(0.5 / 5.0) and row.max_abs == pytest.approx(0.5 / 4.0)
    assert not row.ok
    assert compare_arrays("blob", "x", ref.copy(), ref, tol).ok
    # the same inf on both sides is equal (Caffe can store inf); on one side only it fails
    inf = np.array([np.inf, 1.0], np.float32)
    assert compare_arrays("blob", "x", inf.copy(), inf, tol).ok
    assert not compare_arrays("blob", "x", np.array([1.0, 1.0]), inf, tol).ok
    # all-zero reference: measured against a tiny floor, zeros pass
    assert compare_arrays("blob", "x", np.zeros(3), np.zeros(3, np.float32), tol).ok


# ----------------------------------------------------------------------- tolerance
def test_tolerance_meta_json_then_explicit_then_defaults(tmp_path):
    _, _, ref = copy_case(TRAIN_CASES[0], tmp_path)
    assert Tolerance.for_reference(ref) == Tolerance(1e-4, 1e-3)
    assert Tolerance.for_reference(ref, rel_l2=0.5) == Tolerance(0.5, 1e-3)
    (tmp_path / "meta.json").unlink()
    assert Tolerance.for_reference(ref) == Tolerance(DEFAULT_REL_L2, DEFAULT_MAX_ABS)


def test_a_reduced_precision_run_has_its_own_default_bounds(tmp_path):
    """bf16 is about 1e-2 off float32: a fast run is checked with fast's bounds, not Caffe's
    (a meta.json's are Caffe's float32 ones); explicit bounds still win; the table says which."""
    from caffe_import.parity.compare import FAST_MAX_ABS, FAST_REL_L2

    _, _, ref = copy_case(TRAIN_CASES[0], tmp_path)
    fast = Tolerance.for_reference(ref, reduced=True)
    assert fast == Tolerance(FAST_REL_L2, FAST_MAX_ABS) and FAST_REL_L2 == 2e-2
    assert Tolerance.for_reference(ref, 1e-5, reduced=True) == Tolerance(1e-5, FAST_MAX_ABS)
    assert "precision fast" in fast.source
    assert Tolerance.for_reference(ref).source == "meta.json"


def test_check_parity_in_fast_mode_uses_fast_bounds(tmp_path):
    net, weights, ref = copy_case(SMALL, tmp_path)
    report = check_parity(str(net), str(weights), ref, precision="fast")
    assert report.tolerance == Tolerance(2e-2, 5e-2) and report.ok
    assert "(the default for precision fast (bf16))" in report.table()
    assert report.as_dict()["tolerance_source"].startswith("the default for precision fast")


def test_cli_tolerance_flags_and_json(tmp_path, capsys):
    net, weights, ref = copy_case(SMALL, tmp_path)
    with h5py.File(ref, "r+") as f:
        f["blobs/tanh"][0, 0, 0, 0] += 1e-3  # out of the default bounds, within loose ones
    argv = ["parity", str(net), str(weights), str(ref), "--json"]
    assert main(argv + ["--rel-l2", "1e-6", "--max-abs", "1e-5"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert [r["name"] for r in report["rows"] if not r["ok"]] == ["tanh"]
    assert report["tolerance"] == {"rel_l2": 1e-6, "max_abs_over_max_ref": 1e-5}
    assert main(argv + ["--rel-l2", "1", "--max-abs", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] and report["summary"].endswith("blobs within tolerance")
