"""PASCAL VOC models: FCN-32s/16s/8s (VGG16, staged), FCN-8s at-once, FCN-AlexNet.

Trained on SBD ``train`` (``SBDDSegDataLayer``), evaluated on VOC2011 ``seg11valid``
(``VOCSegDataLayer``), 21 classes, label 255 void.
"""
from __future__ import annotations

from functools import partial

from caffe_import.proto import caffe_pb2
from caffe_import.coord_map import crop
from caffe_import.netspec import L, NetSpec
from fcn_repro.zoo import blocks as B
from fcn_repro.zoo.registry import register
from fcn_repro.zoo.spec import ModelSpec, SolverFacts

MEAN = (104.00699, 116.66877, 122.67892)
NUM_CLASSES = 21
SHAPES = {"data": (1, 3, 500, 500)}
VAL_IMAGES = 736  # seg11valid


def _data(n: NetSpec, kind: str, data_root: str) -> None:
    if kind == "train":
        pairs = [("sbdd_dir", f"{data_root}/sbdd/dataset"), ("seed", 1337), ("split", "train"),
                 ("mean", MEAN)]
        layer = "SBDDSegDataLayer"
    else:
        pairs = [("voc_dir", f"{data_root}/pascal/VOC2011"), ("seed", 1337),
                 ("split", "seg11valid"), ("mean", MEAN)]
        layer = "VOCSegDataLayer"
    B.data_layer(n, kind, ("data", "label"), ("label",), "voc_layers", layer,
                 B.py_dict_repr(pairs), SHAPES)


def vgg_fcn(kind: str, stride: int, atonce: bool = False, data_root: str = "../data") -> caffe_pb2.NetParameter:
    n = NetSpec()
    _data(n, kind, data_root)
    fc7 = B.vgg16_fc(n, n.data, deploy=kind == "deploy")
    scale = {4: 0.01, 3: 0.0001} if atonce else None
    out = B.fcn_head(n, fc7, n.data, NUM_CLASSES, stride, skip_scale=scale)
    if kind != "deploy":
        B.loss(n, "loss", out, n.label)
    return B.finish(n, kind)


def alexnet_fcn(kind: str) -> caffe_pb2.NetParameter:
    """FCN-AlexNet: CaffeNet layers (pool before LRN, grouped conv2/4/5), no lr multipliers
    on the base layers, a 63x63 stride-32 upsampling, and a *normalized* loss."""
    n = NetSpec()
    _data(n, kind, "../data")
    x = B.conv_relu(n, "conv1", "relu1", n.data, 96, ks=11, stride=4, pad=100, learn=False, group=1)
    x = B.max_pool(n, "pool1", x, 3, 2)
    n.norm1 = L.LRN(x, local_size=5, alpha=1e-4, beta=0.75)
    x = B.conv_relu(n, "conv2", "relu2", n.norm1, 256, ks=5, pad=2, learn=False, group=2)
    x = B.max_pool(n, "pool2", x, 3, 2)
    n.norm2 = L.LRN(x, local_size=5, alpha=1e-4, beta=0.75)
    x = B.conv_relu(n, "conv3", "relu3", n.norm2, 384, ks=3, pad=1, learn=False, group=1)
    x = B.conv_relu(n, "conv4", "relu4", x, 384, ks=3, pad=1, learn=False, group=2)
    x = B.conv_relu(n, "conv5", "relu5", x, 256, ks=3, pad=1, learn=False, group=2)
    x = B.max_pool(n, "pool5", x, 3, 2)
    x = B.conv_relu(n, "fc6", "relu6", x, 4096, ks=6, pad=0, learn=False, group=1)
    if kind != "deploy":
        n.drop6 = x = L.Dropout(x, dropout_ratio=0.5, in_place=True)
    x = B.conv_relu(n, "fc7", "relu7", x, 4096, ks=1, pad=0, learn=False, group=1)
    if kind != "deploy":
        n.drop7 = x = L.Dropout(x, dropout_ratio=0.5, in_place=True)
    x = B.score(n, "score_fr", x, NUM_CLASSES)
    x = B.upsample(n, "upscore", x, NUM_CLASSES, 63, 32)
    n.score = crop(x, n.data)
    if kind != "deploy":
        B.loss(n, "loss", n.score, n.label, normalize=True)
    return B.finish(n, kind)


def _staged(lr: float, max_iter: int = 100000) -> SolverFacts:
    return SolverFacts(base_lr=lr, momentum=0.99, iter_size=1, max_iter=max_iter,
                       test_iter=VAL_IMAGES)


def _spec(name: str, build, weights: str, solver: SolverFacts, description: str) -> ModelSpec:
    return ModelSpec(name=name, family="voc", dataset="voc", num_classes=NUM_CLASSES,
                     mean=MEAN, weights_file=weights, build=build, solver_facts=solver,
                     input_shapes=SHAPES, means={"data": MEAN}, description=description)


register(_spec("voc-fcn32s", partial(vgg_fcn, stride=32), "fcn32s-heavy-pascal.caffemodel",
               _staged(1e-10), "FCN-32s, VGG16, one 64x64 stride-32 upsampling"))
# the release's voc-fcn16s/net.py points its data layers two levels up
register(_spec("voc-fcn16s", partial(vgg_fcn, stride=16, data_root="../../data"),
               "fcn16s-heavy-pascal.caffemodel", _staged(1e-12), "FCN-16s: pool4 skip"))
register(_spec("voc-fcn8s", partial(vgg_fcn, stride=8), "fcn8s-heavy-pascal.caffemodel",
               _staged(1e-14), "FCN-8s: pool4 and pool3 skips"))
register(_spec("voc-fcn8s-atonce", partial(vgg_fcn, stride=8, atonce=True),
               "fcn8s-atonce-pascal.caffemodel", _staged(1e-10, 300000),
               "FCN-8s learned all at once, pool4/pool3 scaled by 0.01/0.0001"))
register(_spec("voc-fcn-alexnet", alexnet_fcn, "fcn-alexnet-pascal.caffemodel",
               SolverFacts(base_lr=1e-4, momentum=0.9, iter_size=20, max_iter=100000,
                           test_iter=VAL_IMAGES),
               "FCN-AlexNet: CaffeNet cast fully convolutional, normalized loss, iter_size 20"))
