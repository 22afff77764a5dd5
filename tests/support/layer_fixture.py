"""Run single layers of a real-Caffe ``layers_*`` case on their own: build the layer from the
case's prototxt, load its blobs from the caffemodel, feed the bottoms Caffe stored and compare
the tops with what Caffe computed, at the tolerance of the case's meta.json."""
from __future__ import annotations

from functools import lru_cache
from urllib.parse import quote

import h5py
import numpy as np
import torch
from google.protobuf import text_format

from caffe_import.io import read_net, read_weights
from caffe_import.layers import registry
from caffe_import.proto import caffe_pb2
from support import case_dir, case_meta
from support.compare import assert_within


@lru_cache(maxsize=None)
def _net(case: str):
    return read_net(case_dir(case) / "net.prototxt")


@lru_cache(maxsize=None)
def _weights(case: str):
    return read_weights(case_dir(case) / case_meta(case)["weights"])


def stored(case: str, blob: str) -> np.ndarray:
    with h5py.File(case_dir(case) / "reference.h5", "r") as f:
        return f["blobs"][quote(blob, safe="")][()]


def layer_param(case: str, name: str):
    for lp in _net(case).layer:
        if lp.name == name:
            out = caffe_pb2.LayerParameter()
            out.CopyFrom(lp)
            return out
    raise KeyError(name)


def make(text: str, bottom_shapes, phase: str = "test"):
    """A layer built from LayerParameter text (``type``, ``name``, bottoms/tops and params)."""
    lp = text_format.Parse(text, caffe_pb2.LayerParameter())
    return registry.get(lp.type)(lp, [tuple(s) for s in bottom_shapes], phase)


def build(case: str, name: str, phase: str = "test"):
    """The layer ``name`` of ``case`` with Caffe's weights loaded, and its bottoms as tensors."""
    lp = layer_param(case, name)
    bottoms = [torch.from_numpy(stored(case, b)) for b in lp.bottom]
    layer = registry.get(lp.type)(lp, [tuple(b.shape) for b in bottoms], phase)
    for blob, array in zip(layer.blobs, _weights(case).get(name, [])):
        with torch.no_grad():
            blob.copy_(torch.from_numpy(array).reshape(blob.shape))
    return layer, bottoms


def check_layer(case: str, name: str) -> list[torch.Tensor]:
    """Run layer ``name`` of ``case`` and assert every top matches Caffe at the case's tolerance;
    also check that ``top_shapes`` (meta-device shape inference) agrees."""
    tol = case_meta(case)["tolerance"]
    layer, bottoms = build(case, name)
    lp = layer.param
    with torch.no_grad():
        tops = layer(*bottoms)
    assert [tuple(t.shape) for t in tops] == layer.top_shapes([tuple(b.shape) for b in bottoms])
    for top_name, top in zip(lp.top, tops):
        assert_within(top, stored(case, top_name), tol, f"{case}/{name} top {top_name}")
    return list(tops)


def layer_names(case: str, *types: str) -> list[str]:
    return [lp.name for lp in _net(case).layer if lp.type in types]


def reference_arrays(case: str) -> tuple[dict[str, np.ndarray], dict[str, np.ndarray]]:
    """``(inputs, blobs)`` a case's reference.h5 stores, keyed as stored (percent-encoded)."""
    with h5py.File(case_dir(case) / "reference.h5", "r") as f:
        return ({k: f["inputs"][k][()] for k in f["inputs"]},
                {k: f["blobs"][k][()] for k in f["blobs"]})


def net_after_input(layer: str, shape=(2, 3, 4, 5), phase: str = "test"):
    """A CaffeNet whose Input ``data`` of ``shape`` feeds the layer(s) given as prototxt."""
    from caffe_import.net import CaffeNet

    dims = " ".join(f"dim: {d}" for d in shape)
    return CaffeNet(f'layer {{ name: "data" type: "Input" top: "data" '
                    f'input_param {{ shape {{ {dims} }} }} }}\n{layer}', phase=phase)


def run_after_input(layer: str, x: torch.Tensor, phase: str = "test"):
    """The blobs of ``net_after_input(layer)`` fed ``x`` as ``data``."""
    return net_after_input(layer, tuple(x.shape), phase)(data=x)
