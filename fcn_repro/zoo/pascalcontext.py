"""PASCAL-Context models: FCN-32s/16s/8s on the 59 most frequent classes plus background.

60 outputs (background is scored). Trained on ``train``, evaluated on ``val`` (5,105 images)
through the release's ``PASCALContextSegDataLayer``.
"""
from __future__ import annotations

from functools import partial

from caffe_import.proto import caffe_pb2
from caffe_import.netspec import NetSpec
from fcn_repro.zoo import blocks as B
from fcn_repro.zoo.registry import register
from fcn_repro.zoo.spec import ModelSpec, SolverFacts

MEAN = (104.007, 116.669, 122.679)
NUM_CLASSES = 60
SHAPES = {"data": (1, 3, 500, 500)}
VAL_IMAGES = 5105


def fcn(kind: str, stride: int) -> caffe_pb2.NetParameter:
    n = NetSpec()
    split = "train" if kind == "train" else "val"
    pairs = [("context_dir", "../../data/pascal-context"), ("seed", 1337), ("split", split),
             ("voc_dir", "../../data/pascal")]
    B.data_layer(n, kind, ("data", "label"), ("label",), "pascalcontext_layers",
                 "PASCALContextSegDataLayer", B.py_dict_repr(pairs), SHAPES)
    fc7 = B.vgg16_fc(n, n.data, deploy=kind == "deploy")
    out = B.fcn_head(n, fc7, n.data, NUM_CLASSES, stride)
    if kind != "deploy":
        B.loss(n, "loss", out, n.label)
    return B.finish(n, kind)


def _spec(name: str, stride: int, lr: float) -> ModelSpec:
    return ModelSpec(
        name=name, family="pascalcontext", dataset="pascalcontext", num_classes=NUM_CLASSES,
        mean=MEAN, weights_file=f"{name}-heavy.caffemodel", build=partial(fcn, stride=stride),
        solver_facts=SolverFacts(base_lr=lr, momentum=0.99, iter_size=1, max_iter=300000,
                                 test_iter=VAL_IMAGES),
        input_shapes=SHAPES, means={"data": MEAN}, description=f"FCN-{stride}s, 59 classes + background")


register(_spec("pascalcontext-fcn32s", 32, 1e-10))
register(_spec("pascalcontext-fcn16s", 16, 1e-12))
register(_spec("pascalcontext-fcn8s", 8, 1e-14))
