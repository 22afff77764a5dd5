"""CaffeNet builds nets by Caffe's rules (net.cpp's Init): state filtering, wiring, losses,
param sharing, weight loading. Small prototxt nets of simple layers keep these fast."""
from __future__ import annotations

import traceback

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.io import read_net
from caffe_import.layers import registry
from caffe_import.layers.base import CaffeLayer
from caffe_import.layers.python_layer import register_python_layer, unregister_python_layer
from caffe_import.net import CaffeNet, filter_net
from support import case_dir, case_meta

INPUT = 'layer {{ name: "{n}" type: "Input" top: "{n}" input_param {{ shape {{ {dims} }} }} }}'


def net_text(*layers: str, shape=(2, 3, 4, 5), name="data") -> str:
    dims = " ".join(f"dim: {d}" for d in shape)
    return "\n".join([INPUT.format(n=name, dims=dims), *layers])


def _state(key: str):
    phase, stages, level = key.split("|")
    return phase.lower(), [s for s in stages.split(",") if s], int(level)


# --------------------------------------------------------------------- state rules
STATES = case_meta("net_state_rules")["states"]


@pytest.mark.parametrize("key", sorted(STATES))
def test_state_rules_keep_the_layers_caffe_instantiates(key):
    phase, stages, level = _state(key)
    net = read_net(case_dir("net_state_rules") / "net.prototxt")
    kept = [layer.name for layer in filter_net(net, phase, stages, level).layer]
    assert kept == STATES[key]


@pytest.mark.skipif(registry.get("Convolution") is None, reason="Convolution not registered yet")
@pytest.mark.parametrize("key", sorted(STATES))
def test_caffenet_builds_the_filtered_net_for_every_state(key):
    phase, stages, level = _state(key)
    net = CaffeNet(case_dir("net_state_rules") / "net.prototxt", phase=phase, stages=stages,
                   level=level, keep_blobs=True)
    assert net.layer_names == STATES[key]
    assert net.net_param.state.level == level
    out = net(data=torch.randn(1, 2, 3, 3))
    assert set(STATES[key]) <= set(out)


def test_include_and_exclude_together_is_an_error():
    text = net_text('layer { name: "r" type: "ReLU" bottom: "data" top: "r" '
                    'include { phase: TRAIN } exclude { stage: "x" } }')
    with pytest.raises(CaffeFormatError, match="'r'.*include rules or exclude rules"):
        CaffeNet(text)


def test_stages_add_to_the_files_own_state():
    text = 'state { stage: "deploy" }\n' + net_text(
        'layer { name: "d" type: "ReLU" bottom: "data" top: "d" include { stage: "deploy" '
        'stage: "x" } }')
    assert CaffeNet(text).layer_names == ["data"]
    assert CaffeNet(text, stages=["x"]).layer_names == ["data", "d"]


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


def test_shapes_are_inferred_at_build_and_inputs_may_change_shape():
    text = net_text('layer { name: "f" type: "Flatten" bottom: "data" top: "f" }',
                    'layer { name: "t" type: "Tile" bottom: "f" top: "t" tile_param { tiles: 2 } }')
    net = CaffeNet(text)
    assert net.blob_shapes == {"data": (2, 3, 4, 5), "f": (2, 60), "t": (2, 120)}
    assert net(data=torch.zeros(2, 3, 4, 5))["t"].shape == (2, 120)
    assert net(data=np.zeros((1, 3, 2, 2), np.float32))["t"].shape == (1, 24)


def test_forward_can_return_only_named_blobs_and_keeps_unfed_inputs():
    net = CaffeNet(net_text('layer { name: "r" type: "ReLU" bottom: "data" top: "r" }'))
    x = torch.randn(2, 3, 4, 5)
    assert list(net(outputs=["r"], data=x)) == ["r"]
    assert torch.equal(net()["r"], torch.relu(x))  # pycaffe style: the blob keeps its data
    with pytest.raises(CaffeFormatError, match="not inputs"):
        net(image=x)


# --------------------------------------------------------------------- losses
LOSS_NET = net_text(
    'layer { name: "a" type: "Input" top: "a" input_param { shape { dim: 2 dim: 3 } } }',
    'layer { name: "l2" type: "EuclideanLoss" bottom: "data" bottom: "a" top: "l2" }',
    'layer { name: "aux" type: "Power" bottom: "data" top: "aux" loss_weight: 0.5 }',
    'layer { name: "plain" type: "Power" bottom: "data" top: "plain" }',
    'layer { name: "two" type: "Slice" bottom: "data" top: "p" top: "q" '
    'slice_param { slice_point: 1 } loss_weight: 0 loss_weight: 2 }', shape=(2, 3))


def test_loss_weights_default_to_one_for_loss_types_and_follow_loss_weight():
    if registry.get("EuclideanLoss") is None:
        pytest.skip("EuclideanLoss not registered yet")
    net = CaffeNet(LOSS_NET)
    assert dict(net.loss_weights) == {"l2": 1.0, "aux": 0.5, "q": 2.0}
    x, a = torch.randn(2, 3), torch.randn(2, 3)
    out = net(data=x, a=a)
    expected = out["l2"] + 0.5 * x.sum() + 2 * x[:, 1:].sum()
    assert torch.allclose(net.total_loss(), expected)


def test_loss_weight_count_must_match_the_tops():
    text = net_text('layer { name: "r" type: "Slice" bottom: "data" top: "a" top: "b" '
                    'slice_param { slice_point: 1 } loss_weight: 1 }')
    with pytest.raises(CaffeFormatError, match="'r'.*once per top"):
        CaffeNet(text)


def test_total_loss_backward_gives_param_and_blob_grads_as_caffe_holds_them():
    text = net_text('layer { name: "p" type: "PReLU" bottom: "data" top: "p" }',
                    'layer { name: "r" type: "ReLU" bottom: "p" top: "p" }',
                    'layer { name: "s" type: "Power" bottom: "p" top: "s" loss_weight: 3 }')
    net = CaffeNet(text, phase="train", retain_blob_grads=True)
    x = torch.randn(2, 3, 4, 5)
    net(data=x)
    net.total_loss().backward()
    grads = net.blob_grads()
    slope = torch.full((3,), 0.25)
    pre = torch.nn.functional.prelu(x, slope)
    # the blob "p" holds the gradient w.r.t. PReLU's output (the ReLU's input)
    assert torch.allclose(grads["p"], 3 * (pre > 0).float())
    assert torch.equal(grads["data"], torch.zeros_like(x))  # Caffe does not reach inputs
    expected = (3 * (pre > 0).float() * torch.clamp(x, max=0)).sum(dim=(0, 2, 3))
    assert torch.allclose(net.param_grads()["p"][0], expected)


def test_test_phase_runs_without_graph_unless_asked():
    net = CaffeNet(net_text('layer { name: "p" type: "PReLU" bottom: "data" top: "p" }'))
    assert not net(data=torch.randn(2, 3, 4, 5))["p"].requires_grad
    net.keep_graph = True
    assert net(data=torch.randn(2, 3, 4, 5))["p"].requires_grad


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


# --------------------------------------------------------------------- weights
def test_weights_load_by_name_ignore_unknown_layers_and_round_trip(tmp_path):
    net = CaffeNet(SHARED)
    slope = np.arange(3, dtype=np.float32)
    net.load_weights({"p1": [slope], "not_in_net": [np.zeros(7, np.float32)]})
    assert np.array_equal(net.weights()["p2"][0], slope)  # shared: one blob
    path = tmp_path / "w.caffemodel"
    net.save_weights(path)
    again = CaffeNet(SHARED, weights=path)
    assert np.array_equal(again.weights()["p1"][0], slope)
    assert [p.name for p in tmp_path.iterdir()] == ["w.caffemodel"]


def test_weight_blob_count_and_shape_mismatches_name_the_layer():
    net = CaffeNet(SHARED)
    with pytest.raises(CaffeFormatError, match="'p3'.*2 param blob.*has 1"):
        net.load_weights({"p3": [np.zeros(3, np.float32), np.zeros(3, np.float32)]})
    with pytest.raises(CaffeFormatError, match=r"'p3'.*\(4,\).*expects \(3,\)"):
        net.load_weights({"p3": [np.zeros(4, np.float32)]})


def test_legacy_4d_weight_shapes_load_into_lower_rank_blobs():
    net = CaffeNet(SHARED)
    net.load_weights({"p3": [np.arange(3, dtype=np.float32).reshape(1, 1, 1, 3)]})
    assert net.params["p3"][0].tolist() == [0.0, 1.0, 2.0]


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


class Broken(CaffeLayer):
    def top_shapes(self, bottom_shapes):
        return [bottom_shapes[0]]

    def forward(self, x):
        raise RuntimeError("the layer's own error")


def test_a_layer_error_keeps_its_type_and_names_the_layer():
    """On every Python the package admits (3.10 has no BaseException.add_note: caffe_import
    .compat.add_note), the user sees the layer's own error, with the layer named."""
    register_python_layer("mymod", "Double", Broken)
    register_python_layer("os", "system", Double)
    try:
        with pytest.raises(RuntimeError, match="the layer's own error") as err:
            CaffeNet(PY_NET)(data=torch.ones(2, 3, 4, 5))
    finally:
        unregister_python_layer("mymod", "Double")
        unregister_python_layer("os", "system")
    assert err.value.__notes__ == ["in Caffe layer 'py' (type Python), bottoms [(2, 3, 4, 5)]"]
    shown = "".join(traceback.format_exception(err.type, err.value, err.tb))
    assert "RuntimeError: the layer's own error" in shown and "in Caffe layer 'py'" in shown


def test_blobs_known_before_forward_with_a_clear_error():
    """Issue 9, rough edge 4: a blob not computed yet is named with its shape, not a bare
    KeyError; pycaffe's Blob (.data/.diff) is caffe_import.pycaffe's."""
    from caffe_import.net import CaffeNet
    from support import case_dir

    net = CaffeNet(str(case_dir("voc_fcn8s_narrow") / "net.prototxt"), keep_blobs=True)
    assert list(net.blobs) == ["data"] and "fc7" in net.blob_shapes
    with pytest.raises(KeyError, match=r"'fc7' \(shape \(1, 256, 3, 3\)\) has no data yet"):
        net.blobs["fc7"]
    with pytest.raises(KeyError, match="no blob named 'nope'"):
        net.blobs["nope"]
    net(data=torch.zeros(1, 3, 61, 75))
    assert net.blobs["fc7"].shape == (1, 256, 3, 3)


# --------------------------------------------------------------------- inference memory
CHAIN = net_text('layer { name: "a" type: "TanH" bottom: "data" top: "a" }',
                 'layer { name: "b" type: "ReLU" bottom: "a" top: "a" }',
                 'layer { name: "c" type: "Sigmoid" bottom: "a" top: "c" }',
                 'layer { name: "d" type: "AbsVal" bottom: "c" top: "d" }',
                 'layer { name: "e" type: "Eltwise" bottom: "d" bottom: "c" top: "e" }')


def test_inference_drops_each_blob_after_its_last_reader():
    import weakref

    net = CaffeNet(CHAIN)
    refs = {}
    for layer in net.layers:
        layer.register_forward_hook(
            lambda m, _a, out: refs.update({m.name: weakref.ref(out[0])}) and None)
    out = net(data=torch.randn(2, 3, 4, 5))
    assert list(out) == ["data", "e"] and list(net.blobs) == ["data", "e"]
    assert refs["c"]() is None and refs["d"]() is None  # released, nothing holds them
    with pytest.raises(KeyError, match="released after its last reader.*keep_blobs=True"):
        out["c"]


def test_asked_for_and_kept_blobs_stay_and_graphs_keep_everything():
    x = torch.randn(2, 3, 4, 5)
    net = CaffeNet(CHAIN)
    asked = net(data=x, outputs=["c"])
    assert list(asked) == ["c"]
    assert torch.allclose(asked["c"], torch.sigmoid(torch.relu(torch.tanh(x))))
    kept = CaffeNet(CHAIN, keep_blobs=True)(data=x)
    assert list(kept) == ["data", "a", "c", "d", "e"]
    net.keep_graph = True
    assert list(net(data=x.requires_grad_())) == ["data", "a", "c", "d", "e"]
    assert torch.equal(kept["e"], asked["c"].abs() + asked["c"])


def test_release_plan_uses_last_readers_and_skips_fused_relus():
    from support import case_dir

    d = case_dir("voc_fcn8s_narrow")
    net = CaffeNet(d / "net.prototxt", d / "weights.caffemodel")
    plan = net._plan(None, True, True)
    names = [step.name for step, _, _ in plan]
    assert "relu1_1" not in names and "conv1_1" in names  # ReLU fused into its convolution
    released = [n for _, _, rel in plan for n in rel]
    assert "pool1" in released and "score" not in released and "data" not in released
    assert len(released) == len(set(released))
    assert all(not fused for _, fused, _ in net._plan(None, True, False))
