"""NYUDv2 models (Gupta et al. splits, 40 classes): FCN-32s on color, HHA, RGB-D, RGB-HHA.

All train on ``trainval`` and evaluate on ``test`` (654 images) through the release's
``NYUDSegDataLayer``. Inputs are BGR colour minus (116.190, 97.203, 92.318), HHA minus
(132.431, 94.076, 118.477), and log-depth minus 7.844 (one channel). The RGB-HHA net runs one
VGG16 tower per modality and fuses the two score maps with Eltwise SUM, coefficients 0.5 / 0.5.

The release has no FCN-16s RGB-HHA net (Table 4's last row), so none is registered here.
"""
from __future__ import annotations

from functools import partial

from caffe_import.proto import caffe_pb2
from caffe_import.coord_map import crop
from caffe_import.netspec import L, NetSpec, P
from fcn_repro.zoo import blocks as B
from fcn_repro.zoo.registry import register
from fcn_repro.zoo.spec import ModelSpec, SolverFacts

MEAN_COLOR = (116.190, 97.203, 92.318)
MEAN_HHA = (132.431, 94.076, 118.477)
MEAN_LOGD = (7.844,)
NUM_CLASSES = 40
TEST_IMAGES = 654
H, W = 425, 560  # the release's NYUDv2 images


def _data(n: NetSpec, kind: str, tops: tuple[str, ...], names: tuple[str, ...]) -> None:
    """``tops`` are what the data layer is asked for, ``names`` the blobs they become."""
    split = "trainval" if kind == "train" else "test"
    pairs = [("tops", list(tops)), ("seed", 1337), ("nyud_dir", "../data/nyud"), ("split", split)]
    shapes = {name: (1, 1 if t == "depth" else 3, H, W) for t, name in zip(tops, names)}
    B.data_layer(n, kind, names, ("label",), "nyud_layers", "NYUDSegDataLayer",
                 B.py_dict_repr(pairs), shapes)


def single(kind: str, modality: str) -> caffe_pb2.NetParameter:
    """FCN-32s on one modality (``color`` or ``hha``); the input blob is called ``data``."""
    n = NetSpec()
    _data(n, kind, (modality, "label"), ("data", "label"))
    fc7 = B.vgg16_fc(n, n.data, deploy=kind == "deploy")
    out = B.fcn_head(n, fc7, n.data, NUM_CLASSES, 32)
    if kind != "deploy":
        B.loss(n, "loss", out, n.label)
    return B.finish(n, kind)


def color_depth(kind: str) -> caffe_pb2.NetParameter:
    """RGB-D early fusion: colour and log-depth concatenated (4 channels) into ``conv1_1_bgrd``."""
    n = NetSpec()
    _data(n, kind, ("color", "depth", "label"), ("color", "depth", "label"))
    n.data = L.Concat(n.color, n.depth)
    fc7 = B.vgg16_fc(n, n.data, first_conv="conv1_1_bgrd", deploy=kind == "deploy")
    out = B.fcn_head(n, fc7, n.data, NUM_CLASSES, 32)
    if kind != "deploy":
        B.loss(n, "loss", out, n.label)
    return B.finish(n, kind)


def color_hha(kind: str) -> caffe_pb2.NetParameter:
    """RGB-HHA late fusion: two VGG16 towers (names suffixed ``color`` / ``hha``), score maps
    averaged by Eltwise SUM with coefficients 0.5 / 0.5, then one 32x upsampling."""
    n = NetSpec()
    _data(n, kind, ("color", "hha", "label"), ("color", "hha", "label"))
    for modality in ("color", "hha"):
        fc7 = B.vgg16_fc(n, n[modality], sfx=modality, deploy=kind == "deploy")
        B.score(n, f"score_fr{modality}", fc7, NUM_CLASSES)
    n.score_fused = L.Eltwise(n.score_frcolor, n.score_frhha, operation=P.Eltwise.SUM,
                              coeff=[0.5, 0.5])
    up = B.upsample(n, "upscore", n.score_fused, NUM_CLASSES, 64, 32)
    n.score = crop(up, n.color)
    if kind != "deploy":
        B.loss(n, "loss", n.score, n.label)
    return B.finish(n, kind)


def _spec(name: str, build, mean, means, weights, lr: float, description: str) -> ModelSpec:
    net = build("deploy")
    shapes = {}
    for layer in net.layer:
        if layer.type == "Input":
            shapes = {t: tuple(s.dim) for t, s in zip(layer.top, layer.input_param.shape)}
    return ModelSpec(
        name=name, family="nyud", dataset="nyud", num_classes=NUM_CLASSES, mean=mean,
        weights_file=weights, build=build,
        solver_facts=SolverFacts(base_lr=lr, momentum=0.99, iter_size=1, max_iter=300000,
                                 test_iter=TEST_IMAGES, snapshot=2000),
        input_shapes=shapes, means=means, description=description)


register(_spec("nyud-fcn32s-color", partial(single, modality="color"), MEAN_COLOR,
               {"data": MEAN_COLOR}, "nyud-fcn32s-color-heavy.caffemodel", 1e-10, "FCN-32s RGB"))
register(_spec("nyud-fcn32s-hha", partial(single, modality="hha"), MEAN_HHA,
               {"data": MEAN_HHA}, "nyud-fcn32s-hha-heavy.caffemodel", 1e-10, "FCN-32s HHA"))
register(_spec("nyud-fcn32s-color-d", color_depth, MEAN_COLOR,
               {"color": MEAN_COLOR, "depth": MEAN_LOGD}, None, 1e-10,
               "FCN-32s RGBD (early fusion; the release published no weights)"))
register(_spec("nyud-fcn32s-color-hha", color_hha, MEAN_COLOR,
               {"color": MEAN_COLOR, "hha": MEAN_HHA}, "nyud-fcn32s-color-hha-heavy.caffemodel",
               1e-12, "FCN-32s RGB-HHA (late fusion, score maps averaged)"))
