"""Building nets by Caffe's rules (net.cpp's Init): wiring, losses, param sharing, Python
layers from the registry the build is given."""
from __future__ import annotations

import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.forks.pspnet.layers import PSPNetBN
from caffe_import.forks.segnet.layers import SegNetBN
from caffe_import.forks.yolo.layers import DarknetPooling
from caffe_import.io import read_weights
from caffe_import.layers.pooling import Pooling
from caffe_import.net import CaffeNet
from caffe_import.parity import check_parity
from support import ROOT
from support.net_text import net_text
from caffe_import.layers.base import CaffeLayer
from caffe_import.layers.python_layer import (PythonLayerRegistry, register_python_layer,
                                              unregister_python_layer)


def test_layer_phase_defaults_to_the_net_phase_and_may_override_it():
    text = net_text('layer { name: "d0" type: "Dropout" bottom: "data" top: "d0" }',
                    'layer { name: "d1" type: "Dropout" bottom: "data" top: "d1" phase: TEST }')
    net = CaffeNet(text, phase="train")
    assert [layer.phase for layer in net.layers] == ["train", "train", "test"]
    x = torch.ones(2, 3, 4, 5)
    out = net(data=x)
    assert set(out["d0"].unique().tolist()) <= {0.0, 2.0}
    assert torch.equal(out["d1"], x)


# --------------------------------------------------------------------- wiring
def test_in_place_layers_rewrite_the_blob_and_later_readers_see_it():
    text = net_text('layer { name: "neg" type: "Power" bottom: "data" top: "a" '
                    'power_param { scale: -1 } }',
                    'layer { name: "relu" type: "ReLU" bottom: "a" top: "a" }',
                    'layer { name: "tanh" type: "TanH" bottom: "a" top: "t" }')
    net = CaffeNet(text, keep_blobs=True)
    x = torch.randn(2, 3, 4, 5)
    out = net(data=x)
    assert torch.equal(out["a"], torch.relu(-x))
    assert torch.allclose(out["t"], torch.tanh(torch.relu(-x)))
    assert list(out) == ["data", "a", "t"]  # one blob per name, in creation order
    assert net.outputs == ["t"]


def test_fan_out_reuses_the_blob_without_split_layers():
    text = net_text('layer { name: "r" type: "ReLU" bottom: "data" top: "r" }',
                    'layer { name: "s" type: "Sigmoid" bottom: "data" top: "s" }',
                    'layer { name: "c" type: "Concat" bottom: "r" bottom: "s" bottom: "data" '
                    'top: "c" }')
    net = CaffeNet(text)
    assert net.layer_types == ["Input", "ReLU", "Sigmoid", "Concat"]
    out = net(data=torch.randn(2, 3, 4, 5))
    assert out["c"].shape == (2, 9, 4, 5)
    assert net.outputs == ["c"]


def test_outputs_are_unconsumed_blobs_sorted_by_name_and_inputs_are_input_tops():
    text = net_text('layer { name: "z" type: "ReLU" bottom: "data" top: "z" }',
                    'layer { name: "b" type: "Slice" bottom: "data" top: "b1" top: "a2" '
                    'slice_param { slice_point: 1 } }',
                    'layer { name: "label" type: "Input" top: "label" '
                    'input_param { shape { dim: 2 } } }',
                    'layer { name: "quiet" type: "Silence" bottom: "a2" }')
    net = CaffeNet(text)
    assert net.inputs == ["data", "label"]
    assert net.outputs == ["b1", "label", "z"]


def test_a_top_produced_twice_is_an_error():
    text = net_text('layer { name: "r" type: "ReLU" bottom: "data" top: "x" }',
                    'layer { name: "s" type: "Sigmoid" bottom: "data" top: "x" }')
    with pytest.raises(CaffeFormatError, match="'s'.*'x' produced by multiple sources"):
        CaffeNet(text)


def test_an_unknown_bottom_names_the_layer_and_blob():
    with pytest.raises(CaffeFormatError, match="'r'.*unknown bottom blob 'nope'"):
        CaffeNet(net_text('layer { name: "r" type: "ReLU" bottom: "nope" top: "x" }'))


def test_layers_that_cannot_run_in_place_say_so():
    with pytest.raises(CaffeFormatError, match="'abs'.*in place"):
        CaffeNet(net_text('layer { name: "abs" type: "AbsVal" bottom: "data" top: "data" }'))


def test_unknown_types_are_all_reported_at_once():
    text = net_text('layer { name: "f1" type: "Frobnicate" bottom: "data" top: "f1" }',
                    'layer { name: "r" type: "ReLU" bottom: "f1" top: "r" }',
                    'layer { name: "f2" type: "Zap" bottom: "r" top: "f2" }')
    with pytest.raises(CaffeFormatError) as err:
        CaffeNet(text)
    msg = str(err.value)
    assert "2 layer(s)" in msg and "'f1' (type 'Frobnicate')" in msg and "'f2' (type 'Zap')" in msg


def test_loss_weight_count_must_match_the_tops():
    text = net_text('layer { name: "r" type: "Slice" bottom: "data" top: "a" top: "b" '
                    'slice_param { slice_point: 1 } loss_weight: 1 }')
    with pytest.raises(CaffeFormatError, match="'r'.*once per top"):
        CaffeNet(text)


# --------------------------------------------------------------------- params
SHARED = net_text(
    'layer { name: "p1" type: "PReLU" bottom: "data" top: "p1" '
    'param { name: "slope" lr_mult: 2 } }',
    'layer { name: "p2" type: "PReLU" bottom: "data" top: "p2" param { name: "slope" } }',
    'layer { name: "p3" type: "PReLU" bottom: "data" top: "p3" param { lr_mult: 0 decay_mult: 3 } }')


def test_params_shared_by_name_are_one_parameter_owned_by_the_first_layer():
    net = CaffeNet(SHARED, phase="train")
    assert net.params["p1"][0] is net.params["p2"][0]
    infos = net.learnable_params()
    assert [(i.layer, i.index, i.lr_mult, i.decay_mult) for i in infos] == \
        [("p1", 0, 2.0, 1.0), ("p3", 0, 0.0, 3.0)]
    assert len(list(net.parameters())) == 2
    assert not net.params["p3"][0].requires_grad  # lr_mult 0: Caffe computes no diff
    assert list(net.state_dict()) == ["p1.0", "p2.0", "p3.0"]


def test_shared_params_strict_needs_equal_shapes_permissive_equal_counts():
    base = ('layer {{ name: "a" type: "PReLU" bottom: "data" top: "a" param {{ name: "w" }} }}',
            'layer {{ name: "b" type: "PReLU" bottom: "r" top: "b" param {{ name: "w" {mode} }} }}')
    flat = 'layer { name: "f" type: "Reshape" bottom: "data" top: "r" ' \
           'reshape_param { shape { dim: 0 dim: 0 dim: -1 } } }'
    ok = net_text(flat, *(t.format(mode="") for t in base), shape=(2, 3, 4))
    CaffeNet(ok)
    bad = net_text('layer { name: "t" type: "Tile" bottom: "data" top: "r" tile_param { tiles: 2 } }',
                   *(t.format(mode="") for t in base), shape=(2, 3, 4))
    with pytest.raises(CaffeFormatError, match="'b'.*share param 'w'.*STRICT"):
        CaffeNet(bad)
    with pytest.raises(CaffeFormatError, match="'b'.*PERMISSIVE"):
        CaffeNet(net_text('layer { name: "t" type: "Tile" bottom: "data" top: "r" '
                          'tile_param { tiles: 2 } }',
                          *(t.format(mode="share_mode: PERMISSIVE") for t in base),
                          shape=(2, 3, 4)))


def test_shared_lr_mult_must_agree_where_both_are_given():
    text = net_text(
        'layer { name: "a" type: "PReLU" bottom: "data" top: "a" param { name: "w" lr_mult: 1 } }',
        'layer { name: "b" type: "PReLU" bottom: "data" top: "b" param { name: "w" lr_mult: 2 } }')
    with pytest.raises(CaffeFormatError, match="'b'.*mismatched lr_mult"):
        CaffeNet(text)


def test_state_dict_keys_escape_dots_and_clashing_names():
    text = net_text('layer { name: "conv1/p.1" type: "PReLU" bottom: "data" top: "a" }',
                    'layer { name: "forward" type: "PReLU" bottom: "data" top: "b" }')
    net = CaffeNet(text)
    assert list(net.state_dict()) == ["conv1/p%2E1.0", "%66orward.0"]
    assert list(net.params) == ["conv1/p.1", "forward"]


# --------------------------------------------------------------------- Python layers
PY_NET = net_text('layer { name: "py" type: "Python" bottom: "data" top: "py" '
                  'python_param { module: "mymod" layer: "Double" param_str: "2" } }',
                  'layer { name: "py2" type: "Python" bottom: "py" top: "py2" '
                  'python_param { module: "os" layer: "system" } }')


class Double(CaffeLayer):
    def top_shapes(self, bottom_shapes):
        return [bottom_shapes[0]]

    def forward(self, x):
        return (x * float(self.param.python_param.param_str or 1),)


def test_python_layers_are_never_imported_and_unregistered_pairs_are_named():
    with pytest.raises(CaffeFormatError) as err:
        CaffeNet(PY_NET)
    msg = str(err.value)
    assert "module 'mymod' layer 'Double'" in msg and "module 'os' layer 'system'" in msg


def test_registered_python_layers_build():
    register_python_layer("mymod", "Double", Double)
    register_python_layer("os", "system", Double)
    try:
        out = CaffeNet(PY_NET, keep_blobs=True)(data=torch.ones(2, 3, 4, 5))
        assert torch.equal(out["py"], torch.full((2, 3, 4, 5), 2.0))
        assert torch.equal(out["py2"], out["py"])
    finally:
        unregister_python_layer("mymod", "Double")
        unregister_python_layer("os", "system")


def test_python_layers_come_from_the_registry_the_build_is_given():
    """A registry passed to the net is the only place its Python layers are looked up: the
    default one (register_python_layer) is neither read nor changed."""
    layers = PythonLayerRegistry({("mymod", "Double"): Double, ("os", "system"): Double})
    out = CaffeNet(PY_NET, keep_blobs=True, python_layers=layers)(data=torch.ones(2, 3, 4, 5))
    assert torch.equal(out["py2"], torch.full((2, 3, 4, 5), 2.0))
    with pytest.raises(CaffeFormatError, match="module 'mymod' layer 'Double'"):
        CaffeNet(PY_NET)  # the default registry knows nothing of them
    layers.unregister("os", "system")
    assert list(layers.entries()) == [("mymod", "Double")]
    with pytest.raises(TypeError, match="not a CaffeLayer subclass"):
        layers.register("m", "L", object)


SEGNET_BN = ROOT / "tests" / "fixtures" / "forks" / "segnet" / "layers_bn"


def _segnet_bn_without_fields() -> str:
    """SegNet's BN fixture with ``bn_mode: LEARN`` (its default) left out: those layers set
    no field that tells SegNet's BN from PSPNet's."""
    text = (SEGNET_BN / "net.prototxt").read_text()
    stripped = text.replace("bn_param { bn_mode: LEARN }", "").replace("bn_param { }", "")
    assert stripped.count("bn_param") == 1  # only bn_inference's INFERENCE is left
    return stripped


@pytest.mark.parametrize("as_mapping", [False, True])
def test_bn_whose_fields_do_not_decide_is_the_one_its_weights_fit(as_mapping):
    weights = SEGNET_BN / "weights.caffemodel"
    net = CaffeNet(_segnet_bn_without_fields(),
                   read_weights(weights) if as_mapping else weights)  # no fork named
    assert {type(layer) for layer, kind in zip(net.layers, net.layer_types)
            if kind == "BN"} == {SegNetBN}
    report = check_parity(net, None, SEGNET_BN / "reference.h5")
    assert report.ok, "\n" + report.table()


def test_without_weights_bn_keeps_the_default_order_and_loading_says_what_decides():
    net = CaffeNet(_segnet_bn_without_fields())
    kinds = {name: type(layer) for name, layer in zip(net.layer_names, net.layers)}
    assert kinds["bn_learn"] is PSPNetBN and kinds["bn_default_mode"] is PSPNetBN
    assert kinds["bn_learn_stats"] is SegNetBN  # the batch statistics' tops are SegNet's
    with pytest.raises(CaffeFormatError, match=r"holds? 2 param blob.*has 4.*its weights "
                       r"decide when given as the net is built.*--fork NAME"):
        net.load_weights(SEGNET_BN / "weights.caffemodel")


YOLOV3_TINY = ROOT / "tests" / "fixtures" / "forks" / "deploy" / "yolov3_tiny" / "deploy.prototxt"


def test_a_net_whose_shapes_fit_only_darknets_pooling_is_built_with_it():
    # layer12-maxpool (size 2, stride 1 on 13x13) keeps 13x13 only by darknet's extra cell,
    # which the route (Concat) after the upsampling needs; BVLC's pooling gives 12x12
    net = CaffeNet(YOLOV3_TINY)
    assert type(net.layer("layer12-maxpool")) is DarknetPooling
    assert net.blob_shapes["layer12-maxpool"] == (1, 512, 13, 13)
    named = CaffeNet(YOLOV3_TINY, fork="yolo")
    assert net.blob_shapes == named.blob_shapes
    named.load_state_dict(net.state_dict())
    x = torch.rand(1, 3, 416, 416)
    for blob, value in net(data=x).items():
        assert torch.equal(value, named(data=x)[blob]), blob


POOL_THEN_CONCAT = net_text(
    'layer { name: "pool" type: "Pooling" bottom: "data" top: "pool" '
    'pooling_param { pool: MAX kernel_size: 3 stride: 2 } }',
    'layer { name: "cat" type: "Concat" bottom: "data" bottom: "pool" top: "cat" }',
    shape=(1, 1, 7, 7))


def test_a_net_whose_shapes_fit_no_pooling_rule_keeps_bvlcs_error():
    with pytest.raises(CaffeFormatError, match=r"layer 'cat'.*Concat bottom 'pool' has shape "
                       r"\(1, 1, 3, 3\)"):
        CaffeNet(POOL_THEN_CONCAT)


def test_a_net_that_fits_bvlcs_pooling_keeps_it():
    net = CaffeNet(POOL_THEN_CONCAT.replace("kernel_size: 3 stride: 2", "kernel_size: 1 stride: 1"))
    assert type(net.layer("pool")) is Pooling
