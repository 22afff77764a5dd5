"""Parity with real Caffe: every stored-activation case passes, through the API and the CLI;
a doctored reference fails and names the blob; our own dumps round-trip."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

import h5py
import numpy as np
import pytest

from caffe_import.cli import main
from caffe_import.errors import CaffeFormatError
from caffe_import.parity import (DEFAULT_MAX_ABS, DEFAULT_REL_L2, StoredActivations, Tolerance,
                                 check_parity, compare_arrays, dump, read_reference,
                                 write_reference)
from support import FORWARD_CASES, TRAIN_CASES, case_dir, case_meta

CASES = FORWARD_CASES + TRAIN_CASES
SMALL = "layers_activations"  # the quickest case to build and run


def files(case: str) -> tuple[Path, Path, Path]:
    d, meta = case_dir(case), case_meta(case)
    return d / meta["net"], d / meta["weights"], d / meta["reference"]


@pytest.fixture(scope="module")
def nets():
    """One CaffeNet per case, built on first use and shared by this module's tests."""
    from caffe_import.net import CaffeNet

    cache: dict[str, object] = {}

    def get(case: str):
        if case not in cache:
            net, weights, _ = files(case)
            cache[case] = CaffeNet(str(net), str(weights), phase=case_meta(case)["phase"].lower())
        return cache[case]

    return get


# ----------------------------------------------------------------------- every case passes
@pytest.mark.parametrize("case", CASES)
def test_case_matches_caffe_at_its_tolerance(case, nets):
    _, _, ref = files(case)
    report = check_parity(nets(case), None, ref)
    meta_tol = case_meta(case)["tolerance"]
    assert report.tolerance.rel_l2 == meta_tol["rel_l2"]
    assert report.tolerance.max_abs == meta_tol["max_abs_over_max_ref"]
    assert report.ok, "\n" + report.table()
    stored = set(case_meta(case)["blobs"])
    assert stored <= {r.name for r in report.rows if r.kind == "blob"}


@pytest.mark.parametrize("case", CASES)
def test_cli_passes_every_case(case, capsys):
    net, weights, ref = files(case)
    assert main(["parity", str(net), str(weights), str(ref)]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    n = int(lines[-1].split("/")[0])
    assert n > 0 and lines[-1] == f"{n}/{n} blobs within tolerance"


def test_train_reference_compares_param_and_blob_gradients(nets):
    case = TRAIN_CASES[0]
    report = check_parity(nets(case), None, files(case)[2])
    kinds = {r.kind for r in report.rows}
    assert {"blob", "diff", "blob_diff"} <= kinds and report.phase == "train"
    # the in-place rule: conv1_1's diff is w.r.t. the convolution's output (ReLU's input)
    assert any(r.kind == "blob_diff" and r.name == "conv1_1" and r.ok for r in report.rows)


def test_train_reference_needs_a_train_net(nets):
    from caffe_import.net import CaffeNet

    net, weights, ref = files(TRAIN_CASES[0])
    with pytest.raises(CaffeFormatError, match="TRAIN"):
        check_parity(CaffeNet(str(net), str(weights), phase="test"), None, ref)


# ----------------------------------------------------------------------- failures are rows
def _copy_case(case: str, tmp_path: Path) -> tuple[Path, Path, Path]:
    net, weights, ref = files(case)
    for f in (net, weights, ref, ref.parent / "meta.json"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / net.name, tmp_path / weights.name, tmp_path / ref.name


def test_doctored_reference_fails_and_names_the_blob(tmp_path, capsys):
    net, weights, ref = _copy_case(SMALL, tmp_path)
    with h5py.File(ref, "r+") as f:
        f["blobs/tanh"][0, 0, 0, 0] += 0.5
    assert main(["parity", str(net), str(weights), str(ref)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    failing = [line for line in out if "FAIL" in line]
    assert len(failing) == 1 and failing[0].startswith("tanh ")
    total = int(out[-1].split("/")[1].split()[0])
    assert out[-1] == f"{total - 1}/{total} blobs within tolerance"


def test_missing_blob_shape_mismatch_and_nan_are_failing_rows(tmp_path):
    net, weights, ref = _copy_case(SMALL, tmp_path)
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
    _, _, ref = _copy_case(TRAIN_CASES[0], tmp_path)
    assert Tolerance.for_reference(ref) == Tolerance(1e-4, 1e-3)
    assert Tolerance.for_reference(ref, rel_l2=0.5) == Tolerance(0.5, 1e-3)
    (tmp_path / "meta.json").unlink()
    assert Tolerance.for_reference(ref) == Tolerance(DEFAULT_REL_L2, DEFAULT_MAX_ABS)


def test_cli_tolerance_flags_and_json(tmp_path, capsys):
    net, weights, ref = _copy_case(SMALL, tmp_path)
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


# ----------------------------------------------------------------------- the file format
def test_names_are_percent_encoded_and_round_trip(tmp_path):
    ref = StoredActivations(attrs={"phase": "TEST"})
    ref.inputs["data"] = np.ones((1, 2), np.float32)
    ref.blobs["score/fr.1"] = np.arange(3, dtype=np.float32)
    ref.params["conv/1"] = {0: np.ones((2, 2), np.float32), 1: np.zeros(2, np.float32)}
    write_reference(tmp_path / "r.h5", ref)
    with h5py.File(tmp_path / "r.h5") as f:
        assert "score%2Ffr.1" in f["blobs"] and "conv%2F1" in f["params"]
    back = read_reference(tmp_path / "r.h5")
    assert list(back.blobs) == ["score/fr.1"] and list(back.params["conv/1"]) == [0, 1]
    assert back.phase == "test" and [p.name for p in tmp_path.iterdir()] == ["r.h5"]


def test_unreadable_references_raise_format_errors(tmp_path, capsys):
    junk = tmp_path / "junk.h5"
    junk.write_bytes(b"not hdf5 at all")
    with pytest.raises(CaffeFormatError, match="junk.h5"):
        read_reference(junk)
    with h5py.File(tmp_path / "empty.h5", "w") as f:
        f["x"] = 1
    with pytest.raises(CaffeFormatError, match="/blobs"):
        read_reference(tmp_path / "empty.h5")
    net, weights, _ = files(SMALL)
    assert main(["parity", str(net), str(weights), str(junk)]) == 2
    assert "junk.h5" in capsys.readouterr().err


# ----------------------------------------------------------------------- dump round trip
def test_dump_then_parity_round_trip(tmp_path, nets, capsys):
    net, weights, ref = files(SMALL)
    inputs = {k: v for k, v in read_reference(ref).inputs.items()}
    np.save(tmp_path / "data.npy", inputs["data"])
    out = tmp_path / "mine.h5"
    assert main(["dump", str(net), str(weights), "--input", f"data={tmp_path / 'data.npy'}",
                 "-o", str(out), "--params"]) == 0
    mine = read_reference(out)
    assert mine.attrs["phase"] == "TEST" and mine.params
    assert set(read_reference(ref).blobs) <= set(mine.blobs)
    report = check_parity(nets(SMALL), None, out, rel_l2=0, max_abs=0)  # same code: exact
    assert report.ok and any(r.kind == "param" for r in report.rows)
    # and our dump agrees with Caffe's reference blob by blob
    for name, arr in read_reference(ref).blobs.items():
        np.testing.assert_allclose(mine.blobs[name], arr, rtol=1e-4, atol=1e-6)
    capsys.readouterr()


def test_dump_train_stores_gradients(tmp_path, nets):
    case = TRAIN_CASES[0]
    caffe = read_reference(files(case)[2])
    out = tmp_path / "train.h5"
    mine = dump(nets(case), None, caffe.inputs, out, phase="train")
    assert mine.diffs and mine.blob_diffs and read_reference(out).phase == "train"
    assert check_parity(nets(case), None, out, rel_l2=1e-6, max_abs=1e-6).ok


def test_dump_rejects_unknown_or_missing_inputs(tmp_path, nets):
    with pytest.raises(CaffeFormatError, match="no input blob 'nope'"):
        dump(nets(SMALL), None, {"nope": np.zeros(1)}, tmp_path / "x.h5", phase="test")
    with pytest.raises(CaffeFormatError, match="no value given"):
        dump(nets(SMALL), None, {}, tmp_path / "x.h5", phase="test")
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------- Caffe's backward rules
TINY_TRAIN = """
name: "tiny"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 2 dim: 5 dim: 5 } } }
layer { name: "c1" type: "Convolution" bottom: "data" top: "c1"
        convolution_param { num_output: 3 kernel_size: 3
          weight_filler { type: "gaussian" std: 1 } bias_filler { type: "constant" value: 0.1 } } }
layer { name: "r1" type: "ReLU" bottom: "c1" top: "c1" }
layer { name: "c2" type: "Convolution" bottom: "c1" top: "c2" loss_weight: 2
        convolution_param { num_output: 1 kernel_size: 1 bias_term: false
          weight_filler { type: "gaussian" std: 1 } } }
"""


def test_train_dump_follows_caffes_in_place_and_loss_weight_rules(tmp_path):
    """Seed: the loss top's diff is its loss_weight. In place: c1's diff is the gradient with
    respect to the convolution's output (the ReLU's input). Inputs: diff stays zero."""
    from caffe_import.net import CaffeNet

    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    net = CaffeNet(TINY_TRAIN, phase="train")
    x = torch.randn(1, 2, 5, 5)
    stored = dump(net, None, {"data": x.numpy()}, tmp_path / "t.h5")
    w1, b1 = (p.detach() for p in net.params["c1"])
    (w2,) = (p.detach() for p in net.params["c2"])
    pre = torch.nn.functional.conv2d(x, w1, b1)
    seed = torch.full((1, 1, 3, 3), 2.0)                      # loss_weight 2
    grad_relu_out = (seed * w2.view(1, 3, 1, 1)).expand(1, 3, 3, 3)
    np.testing.assert_allclose(stored.blob_diffs["c2"], seed.numpy())
    np.testing.assert_allclose(stored.blob_diffs["c1"], (grad_relu_out * (pre > 0)).numpy(),
                               rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(stored.blob_diffs["data"], np.zeros((1, 2, 5, 5)))
    want_w2 = (2.0 * pre.clamp(min=0).sum(dim=(2, 3))).view(1, 3, 1, 1)
    np.testing.assert_allclose(stored.diffs["c2"][0], want_w2.numpy(), rtol=1e-5)
    np.testing.assert_allclose(stored.blobs["c1"], pre.clamp(min=0).numpy(), rtol=1e-6)
    assert check_parity(net, None, tmp_path / "t.h5", rel_l2=0, max_abs=0).ok


def test_solver_parity_is_a_library_call_that_names_the_worst_param():
    from caffe_import.parity import check_solver_parity

    seen = []
    report = check_solver_parity(case_dir("solver_fcn32s_narrow"), rel_l2=1e-12, on_step=seen.append)
    assert seen == report.steps and len(report.steps) == 5
    assert not report.ok and report.summary.startswith("0/5 steps within tolerance")
    assert all(s.worst_param and not s.missing and s.line().endswith("FAIL") for s in report.steps)
