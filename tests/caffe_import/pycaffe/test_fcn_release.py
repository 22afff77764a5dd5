"""The FCN release's own pycaffe scripts run under caffe_import.pycaffe and give real
pycaffe's results (fixtures made by BVLC Caffe's pycaffe: tests/fixtures/pycaffe/README.md)."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest
from google.protobuf import text_format
from PIL import Image

from caffe_import.cli import main
from caffe_import.proto import caffe_pb2
from caffe_import.pycaffe.runner import run_script
from support import ROOT

FIX = ROOT / "tests" / "fixtures" / "pycaffe"
RELEASE = FIX / "fcn_release"
NARROW = ROOT / "fcn_repro" / "assets" / "voc_fcn8s_narrow"
RELEASE_MODULES = ("vis", "score", "surgery", "voc_layers")


@pytest.fixture
def clean_modules():
    yield
    for name in RELEASE_MODULES:
        sys.modules.pop(name, None)


def test_infer_py_unmodified(tmp_path, monkeypatch, clean_modules):
    """infer.py as released (2to3 only), with a narrow FCN-8s in its voc-fcn8s/ slot."""
    (tmp_path / "demo").mkdir()
    (tmp_path / "voc-fcn8s").mkdir()
    shutil.copy(FIX / "fcn_infer" / "demo" / "image.jpg", tmp_path / "demo" / "image.jpg")
    shutil.copy(NARROW / "net.prototxt", tmp_path / "voc-fcn8s" / "deploy.prototxt")
    shutil.copy(NARROW / "weights.caffemodel",
                tmp_path / "voc-fcn8s" / "fcn8s-heavy-pascal.caffemodel")
    for name in ("infer.py", "vis.py"):
        shutil.copy(RELEASE / name, tmp_path / name)
    monkeypatch.chdir(tmp_path)
    assert main(["run", "infer.py"]) == 0  # caffe-import run infer.py
    expected = FIX / "fcn_infer" / "expected"
    ours = np.asarray(Image.open(tmp_path / "demo" / "output.png"))
    np.testing.assert_array_equal(ours, np.asarray(Image.open(expected / "output.png")))
    vis_ours = np.asarray(Image.open(tmp_path / "demo" / "visualization.jpg"), dtype=int)
    vis_real = np.asarray(Image.open(expected / "visualization.jpg"), dtype=int)
    assert np.abs(vis_ours - vis_real).max() <= 1  # same pixels; JPEG-encoded by Pillow


def test_solve_style_driver_matches_real_pycaffe(tmp_path, monkeypatch, clean_modules):
    """SGDSolver on the release's voc-fcn32s prototxts (narrow, no Dropout), copy_from,
    surgery.interp, solver.step and score.do_seg_tests through voc_layers.py."""
    shutil.copytree(FIX / "fcn_solve" / "voc-fcn32s", tmp_path / "voc-fcn32s")
    shutil.copytree(FIX / "fcn_solve" / "data", tmp_path / "data")
    (tmp_path / "voc-fcn32s" / "snapshot").mkdir()
    for name in ("score.py", "surgery.py", "voc_layers.py"):
        shutil.copy(RELEASE / name, tmp_path / name)
    monkeypatch.chdir(tmp_path / "voc-fcn32s")
    monkeypatch.syspath_prepend(str(tmp_path))  # the release's root on PYTHONPATH
    assert main(["run", "drive.py", str(tmp_path / "ours.json")]) == 0
    ours = json.loads((tmp_path / "ours.json").read_text())
    real = json.loads((FIX / "fcn_solve" / "expected.json").read_text())
    for key in ("blobs", "params", "interp_layers", "iters", "score_shape"):
        assert ours[key] == real[key], key  # Split blobs included, named as Caffe names them
    assert ours["hists"] == real["hists"]  # every pixel scored the same
    np.testing.assert_allclose(ours["losses"], real["losses"], rtol=1e-5)
    np.testing.assert_allclose(ours["test_losses"], real["test_losses"], rtol=1e-5)
    for mine, theirs in zip(ours["param_sums"], real["param_sums"]):
        for layer in theirs:
            np.testing.assert_allclose(mine[layer], theirs[layer], rtol=1e-6, err_msg=layer)
    for key in ("score_fr_w", "score_fr_b", "upscore_diag"):
        np.testing.assert_allclose(ours[key], real[key], rtol=1e-5, atol=1e-7, err_msg=key)


def test_net_py_regenerates_the_release_prototxts(tmp_path, monkeypatch):
    """voc-fcn32s/net.py (caffe.NetSpec, caffe.layers/params, caffe.coord_map.crop)."""
    shutil.copy(RELEASE / "voc-fcn32s" / "net.py", tmp_path / "net.py")
    monkeypatch.chdir(tmp_path)
    assert run_script("net.py") == 0
    for split in ("train", "val"):
        ours = text_format.Parse((tmp_path / f"{split}.prototxt").read_text(),
                                 caffe_pb2.NetParameter())
        theirs = text_format.Parse((RELEASE / "voc-fcn32s" / f"{split}.prototxt").read_text(),
                                   caffe_pb2.NetParameter())
        # param_str is the script's str(dict): Python 3 keeps insertion order, 2 did not
        a, b = ours.layer[0].python_param, theirs.layer[0].python_param
        assert eval(a.param_str) == eval(b.param_str)
        a.param_str = b.param_str = ""
        assert ours == theirs
