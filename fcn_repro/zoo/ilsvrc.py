"""The ILSVRC classifiers the FCNs start from (deploy nets only, as they were published).

* ``ilsvrc-vgg16`` (alias ``vgg16``): VGG16 of Simonyan & Zisserman, ILSVRC 2014; 13 3x3
  convolutions, fc6 / fc7 InnerProduct 4096 and fc8 1000 with Softmax ``prob``; input
  224x224 minus the BGR mean (103.939, 116.779, 123.68). Its weights were published by the
  VGG group (legacy V1 caffemodel), not on the FCN release's host.
* ``ilsvrc-caffenet`` (aliases ``caffenet``, ``alexnet``): BVLC reference CaffeNet (AlexNet
  with pooling before normalisation); input 227x227 minus the ILSVRC 2012 mean image, whose
  per-channel BGR average is the FCN VOC mean.

Net surgery (``fcn_repro.surgery``) casts fc6 / fc7 into the FCNs' 7x7 (6x6) and 1x1
convolutions by copying parameters with the same layer names.
"""
from __future__ import annotations

from caffe_import.proto import caffe_pb2
from caffe_import.netspec import L, NetSpec, P
from fcn_repro.zoo import blocks as B
from fcn_repro.zoo.registry import register
from fcn_repro.zoo.spec import ModelSpec

VGG_MEAN = (103.939, 116.779, 123.68)
ILSVRC_MEAN = (104.00699, 116.66877, 122.67892)


def _classifier(n: NetSpec, x, fc_width: int, name: str) -> caffe_pb2.NetParameter:
    for i in (6, 7):
        n[f"fc{i}"] = L.InnerProduct(x, num_output=fc_width)
        n[f"relu{i}"] = L.ReLU(n[f"fc{i}"], in_place=True)
        n[f"drop{i}"] = x = L.Dropout(n[f"relu{i}"], dropout_ratio=0.5, in_place=True)
    n.fc8 = L.InnerProduct(x, num_output=1000)
    n.prob = L.Softmax(n.fc8)
    return n.to_proto(name)


def vgg16(kind: str) -> caffe_pb2.NetParameter:
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[10, 3, 224, 224]))
    x = n.data
    for s, (width, reps) in enumerate(B.VGG16_STAGES, start=1):
        for r in range(1, reps + 1):
            n[f"conv{s}_{r}"] = L.Convolution(x, num_output=width, pad=1, kernel_size=3)
            x = n[f"relu{s}_{r}"] = L.ReLU(n[f"conv{s}_{r}"], in_place=True)
        x = n[f"pool{s}"] = L.Pooling(x, pool=P.Pooling.MAX, kernel_size=2, stride=2)
    return _classifier(n, x, 4096, "VGG_ILSVRC_16_layers")


def caffenet(kind: str) -> caffe_pb2.NetParameter:
    n = NetSpec()
    n.data = L.Input(shape=dict(dim=[10, 3, 227, 227]))
    n.conv1 = L.Convolution(n.data, num_output=96, kernel_size=11, stride=4)
    n.relu1 = L.ReLU(n.conv1, in_place=True)
    n.pool1 = L.Pooling(n.relu1, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.norm1 = L.LRN(n.pool1, local_size=5, alpha=1e-4, beta=0.75)
    n.conv2 = L.Convolution(n.norm1, num_output=256, pad=2, kernel_size=5, group=2)
    n.relu2 = L.ReLU(n.conv2, in_place=True)
    n.pool2 = L.Pooling(n.relu2, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    n.norm2 = L.LRN(n.pool2, local_size=5, alpha=1e-4, beta=0.75)
    n.conv3 = L.Convolution(n.norm2, num_output=384, pad=1, kernel_size=3)
    n.relu3 = L.ReLU(n.conv3, in_place=True)
    n.conv4 = L.Convolution(n.relu3, num_output=384, pad=1, kernel_size=3, group=2)
    n.relu4 = L.ReLU(n.conv4, in_place=True)
    n.conv5 = L.Convolution(n.relu4, num_output=256, pad=1, kernel_size=3, group=2)
    n.relu5 = L.ReLU(n.conv5, in_place=True)
    n.pool5 = L.Pooling(n.relu5, pool=P.Pooling.MAX, kernel_size=3, stride=2)
    return _classifier(n, n.pool5, 4096, "CaffeNet")


register(ModelSpec(name="ilsvrc-vgg16", family="ilsvrc", dataset="ilsvrc2012", num_classes=1000,
                   mean=VGG_MEAN, weights_file="VGG_ILSVRC_16_layers.caffemodel", build=vgg16,
                   input_shapes={"data": (10, 3, 224, 224)}, means={"data": VGG_MEAN},
                   outputs=("prob",), labels=(), nets=("deploy",),
                   weights_url="http://www.robots.ox.ac.uk/~vgg/software/very_deep/caffe/"
                               "VGG_ILSVRC_16_layers.caffemodel",
                   description="VGG16 classifier, the base of every VGG FCN"))
register(ModelSpec(name="ilsvrc-caffenet", family="ilsvrc", dataset="ilsvrc2012", num_classes=1000,
                   mean=ILSVRC_MEAN, weights_file="bvlc_reference_caffenet.caffemodel", build=caffenet,
                   input_shapes={"data": (10, 3, 227, 227)}, means={"data": ILSVRC_MEAN},
                   outputs=("prob",), labels=(), nets=("deploy",),
                   description="BVLC reference CaffeNet (AlexNet), the base of FCN-AlexNet"))
