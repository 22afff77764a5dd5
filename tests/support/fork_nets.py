"""Real deploy nets of Caffe forks' families (``tests/fixtures/forks/deploy``, sources in its
SOURCES.md): one table for the schema tests (every net parses) and the layer tests (every net
builds and runs).

Each row: ``family``; ``path``; ``fork``: the shipped fork whose schema the net is written in
(``None``: BVLC's schema describes it); ``inputs``: blob name -> shape the net is fed at its
own size (Input layers as declared; for nets starting with a fork data layer, the tops that
layer would produce); ``fork_types``: the layer types the net uses that BVLC Caffe lacks.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from support import ROOT

DEPLOY = ROOT / "tests" / "fixtures" / "forks" / "deploy"


@dataclass(frozen=True)
class ForkNet:
    family: str
    fork: str | None
    inputs: dict = field(default_factory=dict)
    fork_types: tuple[str, ...] = ()

    @property
    def path(self) -> Path:
        return DEPLOY / self.family / "deploy.prototxt"


_SSD = ("Normalize", "Permute", "PriorBox", "DetectionOutput")
FORK_NETS: list[ForkNet] = [
    ForkNet("ssd300_vgg16", "ssd", {"data": (1, 3, 300, 300)}, _SSD),
    ForkNet("mobilenet_ssd", "ssd", {"data": (1, 3, 300, 300)}, _SSD[1:]),
    ForkNet("res10_face_ssd", "ssd", {"data": (1, 3, 300, 300)}, _SSD),
    ForkNet("mobilenetv2_ssdlite_relu6", "ssd", {"data": (1, 3, 300, 300)},
            ("ReLU6",) + _SSD[1:]),
    ForkNet("pspnet50_ade20k", "pspnet", {"data": (1, 3, 473, 473)}, ("BN", "Interp")),
    ForkNet("segnet", "segnet", {"data": (1, 3, 360, 480), "label": (1, 1, 360, 480)},
            ("DenseImageData", "BN", "Upsample")),
    ForkNet("segnet_basic", "segnet", {"data": (1, 3, 360, 480), "label": (1, 1, 360, 480)},
            ("DenseImageData", "BN", "Upsample")),
    ForkNet("faster_rcnn_zf", "fast-rcnn", {"data": (1, 3, 224, 224), "im_info": (1, 3)},
            ("ROIPooling", "Python")),
    ForkNet("deeplab_v1_vgg16", "deeplab-v1", {"data": (1, 3, 514, 514)},
            ("ImageSegData", "Interp", "Padding", "SegAccuracy", "MatWrite")),
    ForkNet("deeplab_v2_resnet101", None, {"data": (1, 3, 321, 321)}),
    ForkNet("se_resnet50", None, {"data": (1, 3, 224, 224)}, ("Axpy",)),
    ForkNet("densenet121", "ceil-mode", {"data": (1, 3, 224, 224)}),
    ForkNet("resnext50", "ceil-mode", {"data": (1, 3, 224, 224)}),
    ForkNet("shufflenet_g3", "shufflenet", {"data": (1, 3, 224, 224)},
            ("ConvolutionDepthwise", "ShuffleChannel")),
    ForkNet("mobilenet_v1", None, {"data": (1, 3, 224, 224)}),
    ForkNet("mobilenet_v2", None, {"data": (1, 3, 224, 224)}),
    ForkNet("yolov3_tiny", "yolo", {"data": (1, 3, 416, 416)}, ("Upsample",)),
    ForkNet("yolov2_reorg", "yolov2", {"data": (1, 3, 416, 416)}, ("Reorg",)),
]
