"""Real deploy nets of every fork family (``support.fork_nets``, from the projects' public
repositories) build and run, at their own input size, with random weights.

To keep the whole set to seconds on a CPU, wide nets run *narrowed*: every convolution whose
output reaches another convolution has its ``num_output`` (and a grouped convolution its
``group``) divided by the family's factor below; the heads (convolutions no convolution reads
after them: class scores, box offsets, priors) keep theirs, so every fork layer sees the
shapes it expects. Faster R-CNN's opt-in proposal layer is enabled for its net."""
from __future__ import annotations

import math

import pytest
import torch

from caffe_import.io import read_net
from caffe_import.forks.fast_rcnn.layers import disable_proposal_layer, enable_proposal_layer
from caffe_import.net import CaffeNet
from support.fork_nets import FORK_NETS

CONVS = ("Convolution", "Deconvolution", "ConvolutionDepthwise")
#: family -> factor dividing the width of its inner convolutions
NARROW = {"ssd300_vgg16": 8, "pspnet50_ade20k": 16, "segnet": 16, "segnet_basic": 8,
          "faster_rcnn_zf": 4, "deeplab_v1_vgg16": 16, "deeplab_v2_resnet101": 16,
          "se_resnet50": 4, "densenet121": 4, "resnext50": 8, "yolov3_tiny": 4,
          "yolov2_reorg": 8, "mobilenet_ssd": 2, "res10_face_ssd": 2}


#: layers whose output has their first bottom's channels
_SAME_CHANNELS = ("BN", "BatchNorm", "Scale", "ReLU", "ReLU6", "PReLU", "Sigmoid", "TanH",
                  "Dropout", "Pooling", "LRN", "Normalize", "Power", "Interp", "Padding",
                  "Upsample", "Eltwise", "Axpy", "Crop", "ShuffleChannel", "Reorg")
#: layers that need their bottoms' channels to agree
_JOINS = ("Eltwise", "Axpy", "Scale")


def inner_convs(param) -> set[int]:
    """Indices of the convolutions to narrow: those whose output reaches a later convolution,
    and those whose output is joined (Eltwise, Axpy, Scale) with a narrowed one."""
    layers = list(param.layer)
    producer: dict[str, int] = {}
    parents: list[list[int]] = []
    for i, lp in enumerate(layers):
        parents.append([producer[b] for b in lp.bottom if b in producer])
        for t in lp.top:
            producer[t] = i
    inner = set()
    for i in reversed(range(len(layers))):
        children = [j for j in range(i + 1, len(layers)) if i in parents[j]]
        if any(layers[j].type in CONVS or j in inner for j in children):
            inner.add(i)
    inner = {i for i in inner if layers[i].type in CONVS}

    def sources(i: int) -> set[int]:
        if layers[i].type in CONVS:
            return {i}
        if layers[i].type in _SAME_CHANNELS:
            return set().union(*[sources(p) for p in parents[i]])
        return set()

    changed = True
    while changed:
        changed = False
        for i, lp in enumerate(layers):
            if lp.type in _JOINS and len(parents[i]) > 1:
                found = set().union(*[sources(p) for p in parents[i]])
                if found & inner and not found <= inner:
                    inner |= found
                    changed = True
    return inner


def narrowed(param, k: int):
    for i in inner_convs(param):
        p = param.layer[i].convolution_param
        n, g = int(p.num_output), int(p.group)
        if n % k:
            continue
        p.num_output = n // k
        if g == n:
            p.group = n // k
        elif g > 1:  # fewer, not thinner, groups (a thin group is slow on a CPU)
            p.group = g // k if g % k == 0 else math.gcd(g, n // k)
    return param


@pytest.fixture(scope="module", autouse=True)
def proposals():
    enable_proposal_layer(test={"post_nms_top_n": 16})
    yield
    disable_proposal_layer()


@pytest.mark.parametrize("net", FORK_NETS, ids=[n.family for n in FORK_NETS])
def test_deploy_net_builds_and_runs(net):
    param = narrowed(read_net(net.path, fork=net.fork), NARROW.get(net.family, 1))
    built = CaffeNet(param, fork=net.fork, input_shapes=net.inputs)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():  # variance-keeping weights, scales and statistics near 1
        for p in built.parameters():
            if p.dim() > 1 and p.shape[0] > 1:  # convolution and inner product weights
                p.copy_(torch.randn(p.shape, generator=gen) / math.sqrt(p[0].numel()))
            else:  # biases, scales, BN statistics: (C,), (1, C, 1, 1), ()
                p.copy_(torch.rand(p.shape, generator=gen) * 0.5 + 0.75)
    feeds = {name: torch.rand(shape, generator=gen) for name, shape in net.inputs.items()}
    if "im_info" in feeds:
        feeds["im_info"] = torch.tensor([[*net.inputs["data"][2:], 1.0]])
    out = built(**feeds)
    assert set(built.outputs) <= set(out)
    for name, blob in out.items():  # every blob, also those a sink layer consumes
        assert blob.numel() and torch.isfinite(blob).all(), name
