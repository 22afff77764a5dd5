"""Parity with real Caffe: every stored-activation case passes, through the API and the CLI;
a doctored reference fails and names the blob; our own dumps round-trip."""
from __future__ import annotations

import h5py
import numpy as np
import pytest

from caffe_import.cli import main
from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet
from caffe_import.parity import check_parity, dump, read_reference
from support import TRAIN_CASES, case_meta
from support.parity_cases import CASES, SMALL, copy_case, files


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
    net, weights, ref = files(TRAIN_CASES[0])
    with pytest.raises(CaffeFormatError, match="TRAIN"):
        check_parity(CaffeNet(str(net), str(weights), phase="test"), None, ref)


# ----------------------------------------------------------------------- failures are rows
def test_doctored_reference_fails_and_names_the_blob(tmp_path, capsys):
    net, weights, ref = copy_case(SMALL, tmp_path)
    with h5py.File(ref, "r+") as f:
        f["blobs/tanh"][0, 0, 0, 0] += 0.5
    assert main(["parity", str(net), str(weights), str(ref)]) == 1
    out = capsys.readouterr().out.strip().splitlines()
    failing = [line for line in out if "FAIL" in line]
    assert len(failing) == 1 and failing[0].startswith("tanh ")
    total = int(out[-1].split("/")[1].split()[0])
    assert out[-1] == f"{total - 1}/{total} blobs within tolerance"
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
