"""Helpers every test may import (``from support import case_dir``; ``tests/`` is on the
test path through pyproject's ``pythonpath``): where the project and the Caffe reference
fixtures are, and the one way tests compare numbers with Caffe's (``support.compare``).

``support.layer_fixture`` runs single layers of a ``layers_*`` case;
``support.tiny_segmentation`` is a tiny net and toy dataset for loop tests.
"""
from __future__ import annotations

import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "caffe_reference"
PACKAGE_CASES = ROOT / "fcn_repro" / "assets"  # voc_fcn8s_narrow ships with the package (demo)


def case_dir(name: str) -> Path:
    """Folder of a Caffe reference case (see docs/stored_activations_format.md)."""
    for base in (FIXTURES, PACKAGE_CASES):
        if (base / name).is_dir():
            return base / name
    raise FileNotFoundError(f"no reference case {name!r} under {FIXTURES} or {PACKAGE_CASES}")


def case_meta(name: str) -> dict:
    return json.loads((case_dir(name) / "meta.json").read_text())


ALL_CASES = [
    "voc_fcn32s_narrow", "voc_fcn16s_narrow", "voc_fcn8s_narrow", "voc_fcn8s_atonce_narrow",
    "voc_fcn_alexnet_narrow", "siftflow_fcn16s_narrow", "nyud_fcn32s_color_hha_narrow",
    "layers_pooling", "layers_conv", "layers_crop", "layers_norm", "layers_eltwise",
    "layers_activations", "layers_misc", "layers_losses", "train_fcn8s_narrow",
    "net_state_rules", "format_hdf5_fcn16s", "format_v1_vgg16_classifier",
    "format_mean_binaryproto", "solver_fcn32s_narrow", "surgery_transplant_vgg_to_fcn32s",
    "layers_recurrent", "layers_more", "hdf5_output_layer",
]
FORWARD_CASES = [c for c in ALL_CASES if c.startswith(("voc_", "siftflow_", "nyud_", "layers_", "format_hdf5", "format_v1"))]
TRAIN_CASES = ["train_fcn8s_narrow"]
