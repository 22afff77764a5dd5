"""The reference cases the parity tests run (``tests/caffe_import/parity``): every forward and
TRAIN case, the quickest one, its three files, and a copy to doctor in a temp folder."""
from __future__ import annotations

import shutil
from pathlib import Path

from support import FORWARD_CASES, TRAIN_CASES, case_dir, case_meta

CASES = FORWARD_CASES + TRAIN_CASES
SMALL = "layers_activations"  # the quickest case to build and run


def files(case: str) -> tuple[Path, Path, Path]:
    """``(net, weights, reference)`` of a case, as its meta.json names them."""
    d, meta = case_dir(case), case_meta(case)
    return d / meta["net"], d / meta["weights"], d / meta["reference"]


def copy_case(case: str, tmp_path: Path) -> tuple[Path, Path, Path]:
    """The case's net, weights, reference and meta.json copied into ``tmp_path``."""
    net, weights, ref = files(case)
    for f in (net, weights, ref, ref.parent / "meta.json"):
        shutil.copy(f, tmp_path / f.name)
    return tmp_path / net.name, tmp_path / weights.name, tmp_path / ref.name
