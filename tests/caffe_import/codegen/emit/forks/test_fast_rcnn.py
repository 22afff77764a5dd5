"""py-faster-rcnn's proposal layer: a Python layer, written as code where the net is built
with the built-in replacement (``--builtin-python-layer``, or ``enable_proposal_layer`` with
its own settings)."""
from __future__ import annotations

import torch

from caffe_import.codegen import generate, verify
from caffe_import.forks.fast_rcnn.layers import (ProposalLayer, disable_proposal_layer,
                                                 enable_proposal_layer)
from caffe_import.layers.python_layer import PythonLayerRegistry
from caffe_import.net import CaffeNet

NET = '''
layer { name: "in" type: "Input" top: "prob" top: "pred" top: "im_info"
        input_param { shape { dim: 1 dim: 18 dim: 6 dim: 8 } shape { dim: 1 dim: 36 dim: 6 dim: 8 }
                      shape { dim: 1 dim: 3 } } }
layer { name: "proposal" type: "Python" bottom: "prob" bottom: "pred" bottom: "im_info"
        top: "rois" python_param { module: "rpn.proposal_layer" layer: "ProposalLayer"
        param_str: "'feat_stride': 16" } }
'''


def _inputs() -> dict:
    gen = torch.Generator().manual_seed(0)
    return {"prob": torch.rand(1, 18, 6, 8, generator=gen),
            "pred": torch.randn(1, 36, 6, 8, generator=gen) * 0.2,
            "im_info": torch.tensor([[96.0, 128.0, 1.0]])}


def test_the_builtin_proposal_layer_is_written_as_code():
    net = CaffeNet(NET, python_layers=PythonLayerRegistry(
        {("rpn.proposal_layer", "ProposalLayer"): ProposalLayer}))
    gen = generate(net)
    assert "rois = caffe_proposal(prob, pred, im_info, [[" in gen.source
    assert verify(gen, net, _inputs()) == []


def test_enabled_settings_are_the_ones_written():
    enable_proposal_layer(test={"pre_nms_top_n": 50, "post_nms_top_n": 7})
    try:
        net = CaffeNet(NET)
        gen = generate(net)
    finally:
        disable_proposal_layer()
    assert ", 16, 50, 7, 0.7, 16.0)" in gen.source
    assert verify(gen, net, _inputs()) == []
