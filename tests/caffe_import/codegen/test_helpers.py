"""Which functions model.py may copy: every one is self-contained given torch, F and math
(ruff finds no undefined name in it and the functions it calls), callees come first."""
from __future__ import annotations

import subprocess
import sys

from caffe_import.codegen.helpers import HELPERS, closure, helper_source
from caffe_import.layers.softmax import caffe_softmax


def test_each_helper_with_its_callees_stands_alone(tmp_path):
    for name in HELPERS:
        text = "\n\n".join(helper_source(h) for h in closure([name]))
        (tmp_path / f"{name}.py").write_text(
            "import math\n\nimport torch\nimport torch.nn.functional as F\n\n\n" + text
            + f"\n\n__all__ = ['math', 'F', 'torch', {name!r}]\n")
    run = subprocess.run([sys.executable, "-m", "ruff", "check", "--no-cache", "--isolated",
                          "--select", "F", str(tmp_path)], capture_output=True, text=True)
    assert run.returncode == 0, run.stdout[-3000:]


def test_callees_come_first_and_once():
    order = closure(["caffe_detection_output", "caffe_max_pool2d"])
    assert order.index("caffe_decode_boxes") < order.index("caffe_detection_output")
    assert order.index("caffe_pooled_size") < order.index("caffe_pool_pad") \
        < order.index("caffe_max_pool2d")
    assert len(order) == len(set(order))


def test_layer_modules_lend_their_own_pure_functions():
    assert HELPERS["caffe_softmax"] is caffe_softmax
