"""SIFT Flow models: FCN-32s/16s/8s with two heads on one VGG16 trunk.

The semantic head (33 classes, blobs ``*_sem``, loss ``loss``) and the geometric head (3
classes: sky / horizontal / vertical, blobs ``*_geo``, loss ``loss_geo``) share everything up
to fc7. Trained on ``trainval`` (2,486 images), evaluated on ``test`` (200) through the
release's ``SIFTFlowSegDataLayer`` (tops ``data``, ``sem``, ``geo``).
"""
from __future__ import annotations

from functools import partial

from caffe_import.proto import caffe_pb2
from caffe_import.netspec import NetSpec
from fcn_repro.zoo import blocks as B
from fcn_repro.zoo.registry import register
from fcn_repro.zoo.spec import ModelSpec, SolverFacts

MEAN = (114.578, 115.294, 108.353)
NUM_SEM, NUM_GEO = 33, 3
SHAPES = {"data": (1, 3, 256, 256)}
TEST_IMAGES = 200


def fcn(kind: str, stride: int) -> caffe_pb2.NetParameter:
    n = NetSpec()
    split = "trainval" if kind == "train" else "test"
    pairs = [("siftflow_dir", "../data/sift-flow"), ("seed", 1337), ("split", split)]
    B.data_layer(n, kind, ("data", "sem", "geo"), ("sem", "geo"), "siftflow_layers",
                 "SIFTFlowSegDataLayer", B.py_dict_repr(pairs), SHAPES)
    fc7 = B.vgg16_fc(n, n.data, deploy=kind == "deploy")
    for sfx, nclass, loss_name, label in (("_sem", NUM_SEM, "loss", "sem"),
                                          ("_geo", NUM_GEO, "loss_geo", "geo")):
        out = B.fcn_head(n, fc7, n.data, nclass, stride, sfx=sfx)
        if kind != "deploy":
            B.loss(n, loss_name, out, n[label])
    return B.finish(n, kind)


def _spec(name: str, stride: int, lr: float, weights: str) -> ModelSpec:
    return ModelSpec(
        name=name, family="siftflow", dataset="siftflow", num_classes=NUM_SEM, mean=MEAN,
        weights_file=weights, build=partial(fcn, stride=stride),
        solver_facts=SolverFacts(base_lr=lr, momentum=0.99, iter_size=1, max_iter=300000,
                                 test_iter=TEST_IMAGES, snapshot=None, snapshot_prefix=None),
        input_shapes=SHAPES, means={"data": MEAN}, outputs=("score_sem", "score_geo"),
        labels=("sem", "geo"),
        description=f"FCN-{stride}s, semantic ({NUM_SEM}) and geometric ({NUM_GEO}) heads")


# the release trains siftflow-fcn8s at 1e-12 like 16s (not 1e-14 as the VOC 8s)
register(_spec("siftflow-fcn32s", 32, 1e-10, "siftflow-fcn32s-heavy.caffemodel"))
register(_spec("siftflow-fcn16s", 16, 1e-12, "siftflow-fcn16s-heavy.caffemodel"))
register(_spec("siftflow-fcn8s", 8, 1e-12, "siftflow-fcn8s-heavy.caffemodel"))
