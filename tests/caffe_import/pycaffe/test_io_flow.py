"""caffe.io and the classification flows give real pycaffe's numbers: io_flow/drive.py
(load_image, resize_image, oversample, Transformer, BVLC's 00-classification notebook flow
with a feature from an inner blob, caffe.Classifier, caffe.Detector) and BVLC's
python/classify.py, unchanged, run under caffe_import.pycaffe against what BVLC Caffe's
pycaffe wrote (io_flow/expected/)."""
from __future__ import annotations

import shutil

import numpy as np
import pytest

from caffe_import.pycaffe.runner import run_script
from support import ROOT

FLOW = ROOT / "tests" / "fixtures" / "pycaffe" / "io_flow"
CLASSIFY = ["--model_def", "deploy.prototxt", "--pretrained_model", "weights.caffemodel",
            "--images_dim", "10,10", "--mean_file", "mean.npy"]


@pytest.fixture(scope="module")
def work(tmp_path_factory):
    work = tmp_path_factory.mktemp("io_flow") / "io_flow"
    shutil.copytree(FLOW, work, ignore=shutil.ignore_patterns("expected"))
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mp.setenv("GLOG_minloglevel", "2")
    try:
        yield work
    finally:
        mp.undo()


def _close(ours: np.ndarray, real: np.ndarray, key: str, exact: bool = False) -> None:
    assert ours.shape == real.shape and ours.dtype == real.dtype, key
    if exact:  # the same library calls on the same pixels
        np.testing.assert_array_equal(ours, real, err_msg=key)
    else:  # a net ran: float32 rounding
        scale = float(np.abs(real).max())
        assert np.abs(ours.astype(float) - real).max() <= 1e-5 * scale + 1e-6, key


def test_io_and_the_notebook_flow_match_real_pycaffe(work):
    assert run_script("drive.py", [str(work / "ours.npz")]) == 0
    ours, real = np.load(work / "ours.npz"), np.load(FLOW / "expected" / "io.npz")
    assert set(ours.files) == set(real.files) and len(real.files) > 25
    assert bool(real["patched"])  # BVLC's load_image needed as_grey -> as_gray there
    for key in real.files:
        if key != "patched":
            net_ran = key.startswith(("nb_", "feat_", "clf_", "det_"))
            _close(ours[key], real[key], key, exact=not net_ran)


@pytest.mark.parametrize("center", [False, True], ids=["oversample", "center_only"])
def test_bvlc_classify_py_matches_real_pycaffe(work, center, capsys):
    name = "classify_center" if center else "classify"
    args = CLASSIFY + (["--center_only"] if center else []) + ["images.npy", name + ".npy"]
    assert run_script("classify.py", args) == 0
    assert "Classifying 3 inputs." in capsys.readouterr().out
    _close(np.load(work / f"{name}.npy"), np.load(FLOW / "expected" / f"{name}.npy"), name)
