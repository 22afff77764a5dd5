"""The model zoo: every release model, its nets and solver as the release wrote them.

The numbers pinned here are the release's (its net.py / solver.prototxt / caffemodel-url
files) and the paper's; the checked-in prototxt/ tree must equal what the zoo generates.
"""
from __future__ import annotations


import numpy as np
import pytest

from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.proto import caffe_pb2
from fcn_repro import zoo
from fcn_repro.zoo.render import render_model
from support import ROOT

PROTOTXT = ROOT / "prototxt"

RELEASE = [
    "voc-fcn32s", "voc-fcn16s", "voc-fcn8s", "voc-fcn8s-atonce", "voc-fcn-alexnet",
    "nyud-fcn32s-color", "nyud-fcn32s-hha", "nyud-fcn32s-color-d", "nyud-fcn32s-color-hha",
    "siftflow-fcn32s", "siftflow-fcn16s", "siftflow-fcn8s",
    "pascalcontext-fcn32s", "pascalcontext-fcn16s", "pascalcontext-fcn8s",
]
BASE = ["ilsvrc-vgg16", "ilsvrc-caffenet"]

_8S = {"score_pool4c": 5, "score_pool3c": 9, "score": 31}
_16S = {"score_pool4c": 5, "score": 27}
CROPS = {
    "voc-fcn32s": {"score": 19}, "voc-fcn16s": _16S, "voc-fcn8s": _8S, "voc-fcn8s-atonce": _8S,
    "voc-fcn-alexnet": {"score": 18},
    "nyud-fcn32s-color": {"score": 19}, "nyud-fcn32s-hha": {"score": 19},
    "nyud-fcn32s-color-d": {"score": 19}, "nyud-fcn32s-color-hha": {"score": 19},
    "siftflow-fcn32s": {"score_sem": 19, "score_geo": 19},
    "siftflow-fcn16s": {"score_pool4_semc": 5, "score_sem": 27, "score_pool4_geoc": 5, "score_geo": 27},
    "siftflow-fcn8s": {"score_pool4_semc": 5, "score_pool3_semc": 9, "score_sem": 31,
                       "score_pool4_geoc": 5, "score_pool3_geoc": 9, "score_geo": 31},
    "pascalcontext-fcn32s": {"score": 19}, "pascalcontext-fcn16s": _16S, "pascalcontext-fcn8s": _8S,
}
WEIGHTS = {
    "voc-fcn32s": "fcn32s-heavy-pascal.caffemodel", "voc-fcn16s": "fcn16s-heavy-pascal.caffemodel",
    "voc-fcn8s": "fcn8s-heavy-pascal.caffemodel", "voc-fcn8s-atonce": "fcn8s-atonce-pascal.caffemodel",
    "voc-fcn-alexnet": "fcn-alexnet-pascal.caffemodel",
    "nyud-fcn32s-color": "nyud-fcn32s-color-heavy.caffemodel",
    "nyud-fcn32s-hha": "nyud-fcn32s-hha-heavy.caffemodel",
    "nyud-fcn32s-color-d": None,
    "nyud-fcn32s-color-hha": "nyud-fcn32s-color-hha-heavy.caffemodel",
    "siftflow-fcn32s": "siftflow-fcn32s-heavy.caffemodel",
    "siftflow-fcn16s": "siftflow-fcn16s-heavy.caffemodel",
    "siftflow-fcn8s": "siftflow-fcn8s-heavy.caffemodel",
    "pascalcontext-fcn32s": "pascalcontext-fcn32s-heavy.caffemodel",
    "pascalcontext-fcn16s": "pascalcontext-fcn16s-heavy.caffemodel",
    "pascalcontext-fcn8s": "pascalcontext-fcn8s-heavy.caffemodel",
    "ilsvrc-vgg16": "VGG_ILSVRC_16_layers.caffemodel",
    "ilsvrc-caffenet": "bvlc_reference_caffenet.caffemodel",
}
# (base_lr, momentum, iter_size, max_iter, test_iter) of each release solver.prototxt
SOLVERS = {
    "voc-fcn32s": (1e-10, 0.99, 1, 100000, 736), "voc-fcn16s": (1e-12, 0.99, 1, 100000, 736),
    "voc-fcn8s": (1e-14, 0.99, 1, 100000, 736), "voc-fcn8s-atonce": (1e-10, 0.99, 1, 300000, 736),
    "voc-fcn-alexnet": (1e-4, 0.9, 20, 100000, 736),
    "nyud-fcn32s-color": (1e-10, 0.99, 1, 300000, 654), "nyud-fcn32s-hha": (1e-10, 0.99, 1, 300000, 654),
    "nyud-fcn32s-color-d": (1e-10, 0.99, 1, 300000, 654),
    "nyud-fcn32s-color-hha": (1e-12, 0.99, 1, 300000, 654),
    "siftflow-fcn32s": (1e-10, 0.99, 1, 300000, 200), "siftflow-fcn16s": (1e-12, 0.99, 1, 300000, 200),
    "siftflow-fcn8s": (1e-12, 0.99, 1, 300000, 200),
    "pascalcontext-fcn32s": (1e-10, 0.99, 1, 300000, 5105),
    "pascalcontext-fcn16s": (1e-12, 0.99, 1, 300000, 5105),
    "pascalcontext-fcn8s": (1e-14, 0.99, 1, 300000, 5105),
}
DATA_LAYERS = {"voc": ("voc_layers", {"train": "SBDDSegDataLayer", "val": "VOCSegDataLayer"}),
               "nyud": ("nyud_layers", {"train": "NYUDSegDataLayer", "val": "NYUDSegDataLayer"}),
               "siftflow": ("siftflow_layers", {"train": "SIFTFlowSegDataLayer", "val": "SIFTFlowSegDataLayer"}),
               "pascalcontext": ("pascalcontext_layers", {"train": "PASCALContextSegDataLayer",
                                                          "val": "PASCALContextSegDataLayer"})}


def layers_of(net: caffe_pb2.NetParameter, type_name: str) -> list[caffe_pb2.LayerParameter]:
    return [lp for lp in net.layer if lp.type == type_name]


def f32(x: float) -> float:
    return float(np.float32(x))


def test_every_release_model_and_the_base_nets_are_registered():
    assert zoo.names() == RELEASE + BASE
    assert zoo.names("siftflow") == ["siftflow-fcn32s", "siftflow-fcn16s", "siftflow-fcn8s"]
    # the release has no FCN-16s RGB-HHA net (Table 4's last row)
    assert "nyud-fcn16s-color-hha" not in zoo.names()


def test_aliases_and_unknown_names():
    assert zoo.get("vgg16").name == "ilsvrc-vgg16"
    assert zoo.get("caffenet") is zoo.get("alexnet") is zoo.get("ilsvrc-caffenet")
    with pytest.raises(UsageError, match="did you mean voc-fcn8s"):
        zoo.get("voc-fcn8")


@pytest.mark.parametrize("name", RELEASE + BASE)
def test_registry_facts(name):
    spec = zoo.get(name)
    assert spec.weights_file == WEIGHTS[name]
    assert spec.family == name.split("-")[0]
    assert len(spec.mean) == 3 and all(90 < m < 140 for m in spec.mean)
    if spec.weights_file:
        assert spec.url.endswith("/" + spec.weights_file)


def test_means_and_class_counts():
    assert zoo.get("voc-fcn8s").mean == (104.00699, 116.66877, 122.67892)
    assert zoo.get("siftflow-fcn16s").mean == (114.578, 115.294, 108.353)
    assert zoo.get("nyud-fcn32s-hha").means == {"data": (132.431, 94.076, 118.477)}
    assert zoo.get("nyud-fcn32s-color-hha").means == {"color": (116.190, 97.203, 92.318),
                                                      "hha": (132.431, 94.076, 118.477)}
    assert zoo.get("nyud-fcn32s-color-d").means["depth"] == (7.844,)
    assert [zoo.get(n).num_classes for n in ("voc-fcn8s", "nyud-fcn32s-color", "siftflow-fcn8s",
                                             "pascalcontext-fcn8s")] == [21, 40, 33, 60]
    assert zoo.get("voc-fcn8s").url == "http://dl.caffe.berkeleyvision.org/fcn8s-heavy-pascal.caffemodel"


@pytest.mark.parametrize("name", RELEASE)
@pytest.mark.parametrize("kind", ["train", "val", "deploy"])
def test_crop_offsets_are_the_releases(name, kind):
    net = zoo.get(name).net(kind)
    crops = {lp.name: (lp.crop_param.axis, list(lp.crop_param.offset)) for lp in layers_of(net, "Crop")}
    assert crops == {k: (2, [v]) for k, v in CROPS[name].items()}


@pytest.mark.parametrize("name", RELEASE)
def test_train_and_val_nets_feed_from_the_releases_python_layers(name):
    spec = zoo.get(name)
    module, layer = DATA_LAYERS[spec.family]
    for kind in ("train", "val"):
        net = spec.net(kind)
        (data,) = layers_of(net, "Python")
        assert net.layer[0] is not None and net.layer[0].type == "Python"
        assert (data.python_param.module, data.python_param.layer) == (module, layer[kind])
        assert "'seed': 1337" in data.python_param.param_str
        assert set(spec.labels) <= set(data.top)


@pytest.mark.parametrize("name", RELEASE)
def test_losses_are_summed_softmax_ignoring_void(name):
    net = zoo.get(name).train_net()
    losses = layers_of(net, "SoftmaxWithLoss")
    assert [lp.name for lp in losses] == (["loss", "loss_geo"] if "siftflow" in name else ["loss"])
    for lp in losses:
        assert lp.loss_param.ignore_label == 255
        # FCN-AlexNet alone normalizes (and so trains at lr 1e-4 with iter_size 20)
        assert lp.loss_param.normalize is (name == "voc-fcn-alexnet")


@pytest.mark.parametrize("name", RELEASE)
def test_learning_rate_multipliers(name):
    net = zoo.get(name).train_net()
    for lp in layers_of(net, "Convolution"):
        mults = [(p.lr_mult, p.decay_mult) for p in lp.param]
        if name == "voc-fcn-alexnet" and not lp.name.startswith("score"):
            assert mults == []  # the release's AlexNet base layers carry no ParamSpec
        else:
            assert mults == [(1, 1), (2, 0)], lp.name
    for lp in layers_of(net, "Deconvolution"):
        # fixed bilinear upsampling: no bias, not learned
        assert [p.lr_mult for p in lp.param] == [0] and not lp.convolution_param.bias_term
        assert lp.convolution_param.kernel_size[0] == 2 * lp.convolution_param.stride[0] or \
            (name == "voc-fcn-alexnet" and list(lp.convolution_param.kernel_size) == [63])


def test_vgg_fcn_body():
    net = zoo.get("voc-fcn32s").train_net()
    convs = {lp.name: lp.convolution_param for lp in layers_of(net, "Convolution")}
    assert list(convs["conv1_1"].pad) == [100] and list(convs["conv1_2"].pad) == [1]
    assert (list(convs["fc6"].kernel_size), convs["fc6"].num_output) == ([7], 4096)
    assert (list(convs["fc7"].kernel_size), convs["fc7"].num_output) == ([1], 4096)
    assert convs["score_fr"].num_output == 21
    assert [lp.dropout_param.dropout_ratio for lp in layers_of(net, "Dropout")] == [0.5, 0.5]
    assert len(layers_of(net, "Pooling")) == 5
    up = layers_of(net, "Deconvolution")[0].convolution_param
    assert (list(up.kernel_size), list(up.stride)) == ([64], [32])


def test_atonce_scales_its_skips():
    net = zoo.get("voc-fcn8s-atonce").train_net()
    scales = {lp.name: (list(lp.bottom), lp.scale_param.filler.value, [p.lr_mult for p in lp.param])
              for lp in layers_of(net, "Scale")}
    assert scales == {"scale_pool4": (["pool4"], f32(0.01), [0]),
                      "scale_pool3": (["pool3"], f32(0.0001), [0])}


def test_nyud_color_hha_averages_the_two_towers():
    net = zoo.get("nyud-fcn32s-color-hha").train_net()
    (fused,) = layers_of(net, "Eltwise")
    assert fused.name == "score_fused" and list(fused.bottom) == ["score_frcolor", "score_frhha"]
    assert fused.eltwise_param.operation == caffe_pb2.EltwiseParameter.SUM
    assert list(fused.eltwise_param.coeff) == [0.5, 0.5]
    assert {"conv1_1color", "conv1_1hha", "fc7color", "fc7hha"} <= {lp.name for lp in net.layer}
    assert list(layers_of(net, "Crop")[0].bottom) == ["upscore", "color"]


def test_nyud_rgbd_concatenates_depth_into_conv1_1_bgrd():
    net = zoo.get("nyud-fcn32s-color-d").deploy_net()
    (concat,) = layers_of(net, "Concat")
    assert list(concat.bottom) == ["color", "depth"] and list(concat.top) == ["data"]
    assert [list(s.dim) for s in net.layer[0].input_param.shape] == [[1, 3, 425, 560], [1, 1, 425, 560]]
    assert net.layer[2].name == "conv1_1_bgrd"


def test_siftflow_has_a_semantic_and_a_geometric_head():
    spec = zoo.get("siftflow-fcn16s")
    net = spec.train_net()
    convs = {lp.name: lp.convolution_param.num_output for lp in layers_of(net, "Convolution")}
    assert convs["score_fr_sem"] == convs["score_pool4_sem"] == 33
    assert convs["score_fr_geo"] == convs["score_pool4_geo"] == 3
    assert spec.outputs == ("score_sem", "score_geo") and spec.labels == ("sem", "geo")
    losses = {lp.name: list(lp.bottom) for lp in layers_of(net, "SoftmaxWithLoss")}
    assert losses == {"loss": ["score_sem", "sem"], "loss_geo": ["score_geo", "geo"]}


def test_fcn_alexnet_body():
    net = zoo.get("voc-fcn-alexnet").train_net()
    convs = {lp.name: lp.convolution_param for lp in layers_of(net, "Convolution")}
    assert (list(convs["conv1"].kernel_size), list(convs["conv1"].stride), list(convs["conv1"].pad)) == ([11], [4], [100])
    assert [convs[c].group for c in ("conv1", "conv2", "conv3", "conv4", "conv5")] == [1, 2, 1, 2, 2]
    assert list(convs["fc6"].kernel_size) == [6]
    names = [lp.name for lp in net.layer]
    assert names.index("pool1") < names.index("norm1")  # CaffeNet order: pool, then LRN


@pytest.mark.parametrize("name", RELEASE + BASE)
def test_deploy_nets_take_input_and_drop_training_layers(name):
    spec = zoo.get(name)
    net = spec.deploy_net()
    types = {lp.type for lp in net.layer}
    assert net.layer[0].type == "Input"
    assert not types & {"Python", "SoftmaxWithLoss"}
    if spec.family != "ilsvrc":
        assert net.layer[0].name == "input" and "Dropout" not in types
    shapes = {t: tuple(s.dim) for t, s in zip(net.layer[0].top, net.layer[0].input_param.shape)}
    assert shapes == dict(spec.input_shapes)
    tops = {t for lp in net.layer for t in lp.top}
    assert set(spec.outputs) <= tops


def test_base_nets_are_classifiers_with_inner_product_fc6_fc7():
    for name in BASE:
        net = zoo.get(name).deploy_net()
        ips = {lp.name: lp.inner_product_param.num_output for lp in layers_of(net, "InnerProduct")}
        assert ips == {"fc6": 4096, "fc7": 4096, "fc8": 1000}
        assert net.layer[-1].type == "Softmax" and net.layer[-1].name == "prob"
    assert len(layers_of(zoo.get("vgg16").deploy_net(), "Convolution")) == 13
    with pytest.raises(UsageError, match="no train net"):
        zoo.get("vgg16").train_net()
    with pytest.raises(UsageError, match="no solver"):
        zoo.get("vgg16").solver()


@pytest.mark.parametrize("name", RELEASE)
def test_solvers_are_the_releases(name):
    s = zoo.get(name).solver()
    base_lr, momentum, iter_size, max_iter, test_iter = SOLVERS[name]
    assert (s.base_lr, s.momentum, s.iter_size, s.max_iter, list(s.test_iter)) == \
        (f32(base_lr), f32(momentum), iter_size, max_iter, [test_iter])
    assert s.lr_policy == "fixed" and s.weight_decay == f32(0.0005)
    assert s.test_interval == 999999999 and not s.test_initialization
    assert (s.train_net, list(s.test_net)) == ("train.prototxt", ["val.prototxt"])


# ---------------------------------------------------------------- generated files
@pytest.mark.parametrize("name", RELEASE + BASE)
def test_checked_in_prototxt_is_not_stale(name):
    files = render_model(name)
    folder = PROTOTXT / name
    assert sorted(p.name for p in folder.iterdir()) == sorted(files), \
        f"{folder}: run tools/gen_prototxt.py"
    for fname, text in files.items():
        assert (folder / fname).read_text(encoding="utf-8") == text, \
            f"{folder / fname} is stale: run tools/gen_prototxt.py"


def test_no_prototxt_folder_for_unknown_models():
    assert sorted(p.name for p in PROTOTXT.iterdir()) == sorted(RELEASE + BASE)


@pytest.mark.parametrize("name", RELEASE + BASE)
def test_generated_files_read_back(name):
    io = pytest.importorskip("caffe_import.io")
    spec = zoo.get(name)
    for kind in spec.nets:
        assert io.read_net(PROTOTXT / name / f"{kind}.prototxt") == spec.net(kind)
    if spec.has_solver:
        back, ours = io.read_solver(PROTOTXT / name / "solver.prototxt"), spec.solver()
        if not ours.HasField("snapshot_prefix"):
            # SIFT Flow's solvers set none; Caffe then derives one from the solver's path
            assert back.snapshot_prefix.endswith("solver")
            back.ClearField("snapshot_prefix")
        assert back == ours


# ---------------------------------------------------------------- building them as CaffeNets
H = W = 32  # pad 100 lets the FCNs take any size; small keeps the test fast


def caffenet_class(*nets: caffe_pb2.NetParameter):
    """CaffeNet, or skip while it (or a layer type these nets use) has not landed."""
    try:
        from caffe_import.layers import registry
        from caffe_import.net import CaffeNet
    except ImportError as exc:
        pytest.skip(f"caffe_import.net not importable yet: {exc}")
    missing = {lp.type for net in nets for lp in net.layer} - {"Python"} - set(registry.known_types())
    if missing:
        pytest.skip(f"layer types not registered yet: {sorted(missing)}")
    return CaffeNet


def narrow(net: caffe_pb2.NetParameter, h: int = H, w: int = W) -> caffe_pb2.NetParameter:
    """Same topology, widths / 16 (score layers keep their classes), small Input shapes."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    for lp in out.layer:
        if lp.type == "Convolution" and not lp.name.startswith("score"):
            lp.convolution_param.num_output = max(lp.convolution_param.num_output // 16, 2)
        elif lp.type == "InnerProduct":
            lp.inner_product_param.num_output = max(lp.inner_product_param.num_output // 16, 2)
        elif lp.type == "Input":
            for s in lp.input_param.shape:
                s.dim[0], s.dim[2], s.dim[3] = 1, h, w
    return out


def as_input(net: caffe_pb2.NetParameter, spec) -> caffe_pb2.NetParameter:
    """The train net with its Python data layer replaced by an Input of the same tops."""
    out = caffe_pb2.NetParameter()
    out.CopyFrom(net)
    data = out.layer[0]
    assert data.type == "Python"
    tops = list(data.top)
    data.Clear()
    data.name, data.type = "input", "Input"
    data.top.extend(tops)
    for t in tops:
        channels = 1 if t in spec.labels or t == "depth" else 3
        data.input_param.shape.add().dim.extend([1, channels, H, W])
    return out


@pytest.mark.parametrize("name", RELEASE)
def test_deploy_nets_build_and_crop_back_to_the_input_size(name):
    import torch

    spec = zoo.get(name)
    CaffeNet = caffenet_class(spec.deploy_net())
    net = CaffeNet(narrow(spec.deploy_net()))
    torch.manual_seed(0)
    for h, w in ((H, W), (1, 1), (19, 26)):  # any size: pad 100 and the crops see to it
        inputs = {b: torch.randn(net.blob_shapes[b][:2] + (h, w)) for b in net.inputs}
        blobs = net(**inputs)
        for out in spec.outputs:
            classes = 3 if out.endswith("_geo") else spec.num_classes
            assert tuple(blobs[out].shape) == (1, classes, h, w), (out, h, w)


@pytest.mark.parametrize("name", BASE)
def test_base_nets_build(name):
    import torch

    CaffeNet = caffenet_class(zoo.get(name).deploy_net())
    size = 32 if name == "ilsvrc-vgg16" else 67
    net = CaffeNet(narrow(zoo.get(name).deploy_net(), size, size))
    prob = net(data=torch.randn(1, 3, size, size))["prob"]
    assert torch.allclose(prob.sum(1), torch.ones(1), atol=1e-5)


@pytest.mark.parametrize("name", RELEASE)
def test_train_nets_build_in_phase_train_with_input_for_the_python_layer(name):
    import torch

    spec = zoo.get(name)
    CaffeNet = caffenet_class(spec.train_net())
    net = CaffeNet(narrow(as_input(spec.train_net(), spec)), phase="train")
    torch.manual_seed(0)
    feed = {}
    for b in net.inputs:
        shape = net.blob_shapes[b]
        if b in spec.labels:
            classes = 3 if b == "geo" else spec.num_classes
            feed[b] = torch.randint(0, classes, shape).float()
        else:
            feed[b] = torch.randn(shape)
    net(**feed)
    loss = net.total_loss()
    assert torch.isfinite(loss) and loss.item() > 0
    assert set(net.loss_weights) == ({"loss", "loss_geo"} if spec.family == "siftflow" else {"loss"})
    frozen = {i.layer for i in net.learnable_params() if i.lr_mult == 0}
    assert {lp.name for lp in spec.train_net().layer if lp.type == "Deconvolution"} <= frozen


def test_the_releases_python_data_layers_are_refused_unless_registered():
    CaffeNet = caffenet_class(zoo.get("voc-fcn32s").train_net())
    with pytest.raises(CaffeFormatError, match="voc_layers"):
        CaffeNet(zoo.get("voc-fcn32s").train_net(), phase="train")


FIXTURE_CASES = {
    "voc_fcn32s_narrow": "voc-fcn32s", "voc_fcn16s_narrow": "voc-fcn16s",
    "voc_fcn8s_narrow": "voc-fcn8s", "voc_fcn8s_atonce_narrow": "voc-fcn8s-atonce",
    "voc_fcn_alexnet_narrow": "voc-fcn-alexnet", "siftflow_fcn16s_narrow": "siftflow-fcn16s",
    "nyud_fcn32s_color_hha_narrow": "nyud-fcn32s-color-hha",
}


@pytest.mark.parametrize("case", sorted(FIXTURE_CASES))
def test_deploy_topology_matches_the_real_caffe_fixture(case):
    """The nets real Caffe ran for the reference fixtures (narrow widths, same wiring)."""
    import json

    from support import case_dir

    io = pytest.importorskip("caffe_import.io")
    folder = case_dir(case)
    theirs = io.read_net(folder / json.loads((folder / "meta.json").read_text())["net"])
    ours = zoo.get(FIXTURE_CASES[case]).deploy_net()

    def wiring(net):  # Dropout is the identity at test time; Input layers are declared apart
        return [(lp.name, lp.type, list(lp.bottom), list(lp.top)) for lp in net.layer
                if lp.type not in ("Dropout", "Input")]

    def crops(net):
        return {lp.name: (lp.crop_param.axis, list(lp.crop_param.offset))
                for lp in net.layer if lp.type == "Crop"}

    if case.startswith("nyud"):
        # the fixture names its towers conv1_1 / conv1_1_hha; the release conv1_1color /
        # conv1_1hha (the published caffemodel's names, which the zoo keeps)
        shared = {"color", "hha", "score_fused", "upscore", "score", "label"}

        def release_name(x: str) -> str:
            if x in shared:
                return x
            return x[:-4] + "hha" if x.endswith("_hha") else x + "color"

        for lp in theirs.layer:
            if lp.type == "Input":
                continue
            lp.name = release_name(lp.name)
            lp.bottom[:] = [release_name(b) for b in lp.bottom]
            lp.top[:] = [release_name(t) for t in lp.top]
    assert wiring(ours) == wiring(theirs)
    assert crops(ours) == crops(theirs)
    inputs = lambda net: sorted(t for lp in net.layer if lp.type == "Input" for t in lp.top)  # noqa: E731
    assert inputs(ours) == inputs(theirs)
