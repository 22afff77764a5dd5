"""pycaffe's API on small nets gives real pycaffe's results: api_drive.py (nets, forward and
backward with start/end, forward_all, forward_backward_all, reshape, save/copy_from/share_with,
MemoryData, Python layers, the six solvers, snapshot/restore/apply_update, caffe.io) run
under caffe_import.pycaffe against what BVLC Caffe's pycaffe recorded (expected.json)."""
from __future__ import annotations

import json
import shutil
import sys

import numpy as np
import pytest

from caffe_import.pycaffe.runner import run_script
from support import ROOT

API = ROOT / "tests" / "fixtures" / "pycaffe" / "api"


def _same(a, b, where: str) -> None:
    """Names, shapes and flags exactly; numbers (arrays, possibly nested ragged lists of them)
    to float32 rounding: max |ours - real| <= 1e-5 * max |real| + 1e-6 per array."""
    if isinstance(b, dict):
        assert isinstance(a, dict) and set(a) == set(b), where
        for k in b:
            _same(a[k], b[k], f"{where}.{k}")
        return
    if isinstance(b, (bool, str)) or b is None:
        assert a == b, where
        return
    try:
        y = np.asarray(b, dtype=float)
    except ValueError:  # ragged: compare element by element
        assert isinstance(a, list) and len(a) == len(b), where
        for i, (u, v) in enumerate(zip(a, b)):
            _same(u, v, f"{where}[{i}]")
        return
    if isinstance(b, list) and any(isinstance(v, str) for v in np.ravel(np.asarray(b, object))):
        assert a == b, where
        return
    x = np.asarray(a, dtype=float)
    assert x.shape == y.shape, where
    scale = float(np.abs(y).max()) if y.size else 0.0
    assert np.abs(x - y).max(initial=0) <= 1e-5 * scale + 1e-6, where


@pytest.fixture(scope="module")
def recorded(tmp_path_factory):
    work = tmp_path_factory.mktemp("api") / "api"
    shutil.copytree(API, work, ignore=shutil.ignore_patterns("expected.json"))
    mp = pytest.MonkeyPatch()
    mp.chdir(work)
    mp.syspath_prepend(str(work))
    try:
        assert run_script("api_drive.py", [str(work / "ours.json")]) == 0
    finally:
        mp.undo()
        sys.modules.pop("api_layers", None)
    return (json.loads((work / "ours.json").read_text()),
            json.loads((API / "expected.json").read_text()))


def test_every_record_is_there(recorded):
    ours, real = recorded
    assert set(ours) == set(real)


@pytest.mark.parametrize("key", sorted(json.loads((API / "expected.json").read_text())))
def test_record_matches_real_pycaffe(recorded, key):
    ours, real = recorded
    _same(ours[key], real[key], key)
