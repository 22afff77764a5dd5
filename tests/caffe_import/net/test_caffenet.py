"""CaffeNet runs nets as Caffe does: forward, losses, gradients as Caffe holds them, inference
memory, and the read-only view of its layers. Small prototxt nets keep these fast."""
from __future__ import annotations

import dataclasses
import traceback

import numpy as np
import pytest
import torch

from caffe_import.errors import CaffeFormatError
from caffe_import.layers import registry
from caffe_import.layers.base import CaffeLayer
from caffe_import.layers.python_layer import PythonLayerRegistry
from caffe_import.net import CaffeNet
from support.net_text import net_text


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


def test_blobs_known_before_forward_with_a_clear_error():
    """Issue 9, rough edge 4: a blob not computed yet is named with its shape, not a bare
    KeyError; pycaffe's Blob (.data/.diff) is caffe_import.pycaffe's."""
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




def test_steps_are_a_read_only_view_of_the_layers():
    net = CaffeNet(CHAIN)
    steps = net.steps
    assert isinstance(steps, tuple) and [s.name for s in steps] == net.layer_names
    assert steps[2].bottoms == ("a",) and steps[2].tops == ("a",) and steps[2].in_place == (True,)
    assert steps[0].is_input and steps[1].module is net.layer("a")
    with pytest.raises(dataclasses.FrozenInstanceError):
        steps[1].tops = ("x",)
    assert [s.name for s in net.steps_for(["c"])] == ["data", "a", "b", "c"]


class _Broken(CaffeLayer):
    def top_shapes(self, bottom_shapes):
        return [bottom_shapes[0]]

    def forward(self, x):
        raise RuntimeError("the layer's own error")


def test_a_layer_error_keeps_its_type_and_names_the_layer():
    """On every Python the package admits (3.10 has no BaseException.add_note: caffe_import
    .compat.add_note), the user sees the layer's own error, with the layer named."""
    text = net_text('layer { name: "py" type: "Python" bottom: "data" top: "py" '
                    'python_param { module: "mymod" layer: "Broken" } }')
    layers = PythonLayerRegistry({("mymod", "Broken"): _Broken})
    with pytest.raises(RuntimeError, match="the layer's own error") as err:
        CaffeNet(text, python_layers=layers)(data=torch.ones(2, 3, 4, 5))
    assert err.value.__notes__ == ["in Caffe layer 'py' (type Python), bottoms [(2, 3, 4, 5)]"]
    shown = "".join(traceback.format_exception(err.type, err.value, err.tb))
    assert "RuntimeError: the layer's own error" in shown and "in Caffe layer 'py'" in shown
