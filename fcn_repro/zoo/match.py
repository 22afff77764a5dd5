"""Which zoo model a net is: a prototxt's computation compared with the zoo's deploy nets.

``fcn-repro eval --net deploy.prototxt`` knows only a file; ``fcn-repro tables`` matches
results by model name. :func:`net_signature` hashes what decides the scores a net computes:
its layers in order with their types, names (the weights are copied by layer name), bottoms,
tops and layer parameters. It leaves out what does not change a deploy net's output: the net's
name, input layers and shapes, Dropout (an identity at TEST), loss and accuracy layers, learning
rate and decay multipliers, fillers and include/exclude rules. So the release's own
``deploy.prototxt``, our generated one and a ``val.prototxt`` of the same model agree.
"""
from __future__ import annotations

import functools
import hashlib

from caffe_import.proto import caffe_pb2
from fcn_repro.data import dataset_info
from fcn_repro.zoo.registry import get, names

#: layers whose presence does not change a deploy net's score blobs
_IGNORED_TYPES = frozenset({"Input", "Data", "ImageData", "HDF5Data", "MemoryData", "WindowData",
                            "DummyData", "Python", "Dropout", "Silence", "Accuracy",
                            "SoftmaxWithLoss", "SigmoidCrossEntropyLoss", "EuclideanLoss",
                            "HingeLoss", "InfogainLoss", "MultinomialLogisticLoss",
                            "ContrastiveLoss"})
#: LayerParameter fields that only matter for training or net construction
_IGNORED_FIELDS = ("param", "include", "exclude", "phase", "loss_weight", "propagate_down",
                   "blobs", "loss_param")


def net_signature(net_param: caffe_pb2.NetParameter) -> str:
    """A sha256 of the net's computation (see the module doc); equal for equal computations."""
    h = hashlib.sha256()
    for layer in net_param.layer:
        if layer.type in _IGNORED_TYPES:
            continue
        kept = type(layer)()  # the net's own schema (a Caffe fork's layers too)
        kept.CopyFrom(layer)
        for name in _IGNORED_FIELDS:
            kept.ClearField(name)
        for conv in (kept.convolution_param, kept.inner_product_param):
            conv.ClearField("weight_filler")
            conv.ClearField("bias_filler")
        h.update(kept.SerializeToString(deterministic=True))
        h.update(b"\0")
    return h.hexdigest()


@functools.lru_cache(maxsize=1)
def _zoo_signatures() -> tuple[tuple[str, str], ...]:
    return tuple((name, net_signature(get(name).deploy_net())) for name in names())


def matching_models(net_param: caffe_pb2.NetParameter, modality: str | None = None) -> list[str]:
    """The zoo models whose deploy net computes what ``net_param`` computes, in zoo order.

    The NYUDv2 color and HHA FCN-32s share one topology and differ only in what they are
    fed: ``modality`` (what the evaluation fed, e.g. ``hha``) picks between such models.
    """
    implied = dataset_info("nyud").model_options
    target = net_signature(net_param)
    found = [name for name, sig in _zoo_signatures() if sig == target]
    if len(found) > 1 and modality is not None:
        found = [n for n in found if implied(n)["modality"] == modality] or found
    return found
