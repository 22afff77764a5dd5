"""Caffe nets fed from ``fcn_repro.data`` datasets instead of the release's data layers.

The zoo's train/val nets read images through Python data layers (``voc_layers.py`` and
siblings); :func:`feed_net` swaps those for ``Input`` layers, and :func:`item_to_blobs` turns a
dataset item into the blobs such a net takes: images ``1 x C x H x W``, labels as float
``1 x 1 x H x W`` blobs, as Caffe's data layers hand them to ``SoftmaxWithLoss``. Training feeds
the solver this way, and evaluation feeds the labels to val nets that compute a loss.
"""
from __future__ import annotations

from typing import Any, Mapping, Sequence

import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.proto import caffe_pb2

__all__ = ["DATA_LAYER_TYPES", "data_tops", "feed_net", "item_to_blobs"]

#: layer types that read data themselves (replaced by ``Input`` for training here)
DATA_LAYER_TYPES = ("Python", "Data", "ImageData", "HDF5Data", "MemoryData", "WindowData", "DummyData")

def data_tops(net_param: caffe_pb2.NetParameter) -> list[str]:
    """Tops of the net's data layers (layers of a data type with no bottoms), in order."""
    return [t for l in net_param.layer if l.type in DATA_LAYER_TYPES and not l.bottom for t in l.top]


def feed_net(net_param: caffe_pb2.NetParameter, shapes: Mapping[str, Sequence[int]]
             ) -> caffe_pb2.NetParameter:
    """A copy of ``net_param`` whose data layers are ``Input`` layers with the given top shapes.

    Each data layer becomes one ``Input`` layer with the same name and tops (its include /
    exclude rules kept), so nothing downstream changes. The shapes are only the first ones;
    a CaffeNet reshapes on every forward.
    """
    out = type(net_param)()  # the net's own schema (a Caffe fork's messages stay in their pool)
    out.CopyFrom(net_param)
    del out.layer[:]
    for layer in net_param.layer:
        if layer.type in DATA_LAYER_TYPES and not layer.bottom:
            new = out.layer.add()
            new.name = layer.name
            new.type = "Input"
            new.include.extend(layer.include)
            new.exclude.extend(layer.exclude)
            for top in layer.top:
                if top not in shapes:
                    raise CaffeFormatError(f"no data for top '{top}' of the data layer (the dataset "
                                           f"gives {', '.join(shapes)})", layer=layer.name)
                new.top.append(top)
                new.input_param.shape.add().dim.extend(int(d) for d in shapes[top])
        else:
            out.layer.add().CopyFrom(layer)
    return out


def item_to_blobs(item: tuple[Any, Any], input_names: Sequence[str],
                  label_names: Sequence[str]) -> dict[str, torch.Tensor]:
    """One dataset item ``(inputs, labels)`` as batch-1 blobs keyed by the net's top names.

    Images ``C x H x W`` -> ``1 x C x H x W``; labels ``H x W`` (int64) -> float
    ``1 x 1 x H x W`` (Caffe's label blobs are float). Dict items are keyed by blob names.
    """
    inputs, labels = item
    out: dict[str, torch.Tensor] = {}
    if not isinstance(inputs, Mapping):
        inputs = {input_names[0]: inputs}
    if not isinstance(labels, Mapping):
        labels = {label_names[0]: labels}
    for name, x in inputs.items():
        t = torch.as_tensor(x, dtype=torch.float32)
        out[name] = t.unsqueeze(0) if t.dim() == 3 else t
    for name, y in labels.items():
        t = torch.as_tensor(y).to(torch.float32)
        while t.dim() < 4:
            t = t.unsqueeze(0)
        out[name] = t
    return out
