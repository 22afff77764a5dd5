"""How a net runs: in-place layers overwrite their bottom only where Caffe would and nothing
else can see it; blobs are released after their last reader; Convolution+ReLU fuse."""
from __future__ import annotations

import torch

from caffe_import.net import CaffeNet
from caffe_import.net.plan import run_plan
from support import case_dir

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
    marked = {s.name: s.module.may_overwrite_bottom for s in net.steps}
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


def test_release_plan_uses_last_readers_and_skips_fused_relus():
    d = case_dir("voc_fcn8s_narrow")
    net = CaffeNet(d / "net.prototxt", d / "weights.caffemodel")
    plan = net._plan(None, True, True)
    names = [step.name for step, _, _ in plan]
    assert "relu1_1" not in names and "conv1_1" in names  # ReLU fused into its convolution
    released = [n for _, _, rel in plan for n in rel]
    assert "pool1" in released and "score" not in released and "data" not in released
    assert len(released) == len(set(released))
    assert all(not fused for _, fused, _ in net._plan(None, True, False))


def test_run_plan_keeps_what_it_is_told_and_frees_nothing_without_free():
    d = case_dir("voc_fcn8s_narrow")
    net = CaffeNet(d / "net.prototxt")
    kept = run_plan(net.steps, ["pool1"], free=True, fuse=False)
    released = [n for _, _, rel in kept for n in rel]
    assert "pool1" not in released and "conv1_1" in released
    assert all(not rel for _, _, rel in run_plan(net.steps, [], free=False, fuse=False))
