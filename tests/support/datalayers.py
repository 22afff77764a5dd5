"""The data-layer fixture made by real Caffe (tests/fixtures/datalayers/README.md): a copy to
work in (opening a LevelDB replays its log, which writes to its folder, as in Caffe)."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np

from . import ROOT

DATALAYERS = ROOT / "tests" / "fixtures" / "datalayers"
NET_NAMES = sorted(p.stem for p in (DATALAYERS / "nets").glob("*.prototxt"))
FORWARDS = 3


def data_fixture(tmp_path: Path, monkeypatch=None) -> Path:
    """A copy of the fixture folder under ``tmp_path`` (the working folder when
    ``monkeypatch`` is given: the nets' paths are relative to it, as Caffe reads them)."""
    copy = tmp_path / "datalayers"
    shutil.copytree(DATALAYERS, copy)
    if monkeypatch is not None:
        monkeypatch.chdir(copy)
    return copy


def caffe_batches() -> dict[str, np.ndarray]:
    """``<net>/<forward>/<top>`` -> what pycaffe's forward gave."""
    with np.load(DATALAYERS / "caffe" / "batches.npz") as z:
        return {k: z[k] for k in z.files}
