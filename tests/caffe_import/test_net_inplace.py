"""In-place layers overwrite their bottom only where Caffe would and nothing else can see it."""
from __future__ import annotations

import torch

from caffe_import.net import CaffeNet

NET = """
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 4 dim: 4 } } }
layer { name: "relu_in" type: "ReLU" bottom: "data" top: "data" }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "flat" type: "Flatten" bottom: "conv" top: "flat" }
layer { name: "relu_conv" type: "ReLU" bottom: "conv" top: "conv" }
layer { name: "conv2" type: "Convolution" bottom: "conv" top: "conv2"
        convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "relu_conv2" type: "ReLU" bottom: "conv2" top: "conv2" }
"""


def test_only_layers_whose_bottom_nobody_else_holds_may_overwrite_it():
    net = CaffeNet(NET)
    marked = {s.name: s.module.may_overwrite_bottom for s in net._steps}
    assert marked["relu_in"] is False      # the caller's input tensor
    assert marked["relu_conv"] is False    # Flatten read conv before the ReLU (it may hold a view)
    assert marked["relu_conv2"] is True    # a fresh convolution output


def test_inference_never_changes_the_callers_tensor_or_earlier_views():
    torch.manual_seed(0)
    net = CaffeNet(NET)
    x = torch.randn(1, 2, 4, 4)
    x_before = x.clone()
    with torch.inference_mode():
        out = net(data=x)
    assert torch.equal(x, x_before)
    assert (out["flat"] < 0).any()        # Flatten's output keeps the pre-ReLU values, as in Caffe
    assert (out["conv2"] >= 0).all()


def test_in_place_and_out_of_place_give_the_same_blobs():
    torch.manual_seed(0)
    net = CaffeNet(NET)
    x = torch.randn(1, 2, 4, 4)
    with torch.inference_mode():
        fast = {k: v.clone() for k, v in net(data=x).items()}
    with torch.enable_grad():
        net.keep_graph = True
        slow = net(data=x)
    for k in fast:
        assert torch.equal(fast[k], slow[k].detach()), k
