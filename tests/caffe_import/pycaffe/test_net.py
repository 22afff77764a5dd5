"""caffe_import.pycaffe.net: pycaffe's Net surface and storage model."""
from __future__ import annotations

import sys
import traceback

import numpy as np
import pytest
import torch

from caffe_import import pycaffe as caffe
from caffe_import.net import CaffeNet
from caffe_import.pycaffe.runner import caffe_aliased
from support.pycaffe_nets import batch


def _ref(tiny, phase="train"):
    name = "train" if phase == "train" else "deploy"
    return CaffeNet(str(tiny / f"{name}.prototxt"), weights=str(tiny / "weights.caffemodel"),
                    phase=phase)


def test_constructor_forms(tiny):
    p, w = str(tiny / "deploy.prototxt"), str(tiny / "weights.caffemodel")
    a = caffe.Net(p, caffe.TEST, weights=w)
    b = caffe.Net(p, w, caffe.TEST)  # the old form
    c = caffe.Net(network_file=p, phase=caffe.TEST, level=0, stages=[], weights=w)
    for net in (b, c):
        np.testing.assert_array_equal(net.params["conv"][0].data, a.params["conv"][0].data)
    with pytest.raises(FileNotFoundError, match="nope.prototxt"):
        caffe.Net(str(tiny / "nope.prototxt"), caffe.TEST)
    with pytest.raises(ValueError, match="caffe.TRAIN"):
        caffe.Net(p, 7)
    with pytest.raises(TypeError):
        caffe.Net(p)


def test_blobs_and_params_complete_after_construction(tiny):
    net = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN)
    assert list(net.blobs) == ["data", "label", "conv", "pool", "ip", "loss"]
    assert net._blob_names == list(net.blobs)
    assert net._blobs[2] is net.blobs["conv"]
    assert [b.shape for b in net.blobs.values()] == [
        (2, 3, 8, 8), (2,), (2, 4, 8, 8), (2, 4, 4, 4), (2, 5), ()]
    assert not net.blobs["ip"].data.any()  # zeros before the first forward, as Caffe's
    assert float(net.blobs["loss"].diff) == 1.0  # loss weight in the diff (SetLossWeights)
    assert list(net.params) == ["conv", "ip"]
    assert [b.shape for b in net.params["conv"]] == [(4, 3, 3, 3), (4,)]
    with pytest.raises(KeyError):
        net.blobs["nope"]


def test_blob_legacy_accessors(tiny):
    net = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN)
    b = net.blobs["conv"]
    assert (b.num, b.channels, b.height, b.width, b.count) == (2, 4, 8, 8, 2 * 4 * 64)
    assert (net.blobs["ip"].num, net.blobs["ip"].channels, net.blobs["ip"].height) == (2, 5, 1)


def test_forward_matches_caffenet_and_fills_held_arrays(tiny):
    x, y = batch()
    net = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN,
                    weights=str(tiny / "weights.caffemodel"))
    held_ip = net.blobs["ip"].data
    out = net.forward(data=x, label=y)
    assert set(out) == {"loss"}
    ref = _ref(tiny)(data=torch.from_numpy(x), label=torch.from_numpy(y))
    np.testing.assert_array_equal(held_ip, ref["ip"].detach().numpy())
    assert np.shares_memory(held_ip, net.blobs["ip"].data)
    assert float(out["loss"]) == pytest.approx(float(ref["loss"].detach()), rel=1e-6)
    with pytest.raises(ValueError, match="do not match net inputs"):
        net.forward(data=x)


def test_param_data_is_the_storage(tiny):
    x, _ = batch()
    net = caffe.Net(str(tiny / "deploy.prototxt"), caffe.TEST,
                    weights=str(tiny / "weights.caffemodel"))
    w = net.params["ip"][0].data
    w[...] = 0
    net.params["ip"][1].data[...] = np.arange(5, dtype=np.float32)
    prob = net.forward(data=x)["prob"]
    e = np.exp(np.arange(5) - 4.0)
    np.testing.assert_allclose(prob, np.tile(e / e.sum(), (2, 1)), rtol=1e-6)
    net.copy_from(str(tiny / "weights.caffemodel"))  # copies into the same storage
    assert w.any()


def test_forward_start_end_and_extra_blobs(tiny):
    x, _ = batch()
    net = caffe.Net(str(tiny / "deploy.prototxt"), caffe.TEST,
                    weights=str(tiny / "weights.caffemodel"))
    full = {k: v.copy() for k, v in net.forward(blobs=["pool"], data=x).items()}
    assert set(full) == {"prob", "pool"}
    out = net.forward(end="pool")
    assert set(out) == {"pool"}
    net.blobs["pool"].data[...] = 0  # start from a blob's buffer, as ForwardFromTo does
    out = net.forward(start="ip")
    assert not np.allclose(out["prob"], full["prob"])
    np.testing.assert_allclose(out["prob"], 0.2, rtol=1e-5)
    with pytest.raises(ValueError, match="no layer named"):
        net.forward(start="nope")
    with pytest.raises(ValueError, match=r"^forward\(end='poo'\): .*did you mean 'pool'\?"):
        net.forward(end="poo")


def test_backward_matches_autograd(tiny):
    x, y = batch()
    net = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN,
                    weights=str(tiny / "weights.caffemodel"))
    net.forward(data=x, label=y)
    diffs = net.backward(diffs=["conv"])
    assert set(diffs) == {"data", "label", "conv"}
    ref = _ref(tiny)
    ref.retain_blob_grads = True
    ref(data=torch.from_numpy(x), label=torch.from_numpy(y))
    ref.total_loss().backward()
    grads = ref.param_grads()
    for name in ("conv", "ip"):
        for blob, g in zip(net.params[name], grads[name]):
            np.testing.assert_allclose(blob.diff, g.numpy(), rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.blobs["conv"].diff, ref.blob_grads()["conv"].numpy(),
                               rtol=1e-5, atol=1e-8)
    assert not net.blobs["data"].diff.any()  # no force_backward: inputs get no diff
    held = net.params["ip"][0].diff
    before = held.copy()
    net.backward()  # param diffs accumulate, as Caffe's
    np.testing.assert_allclose(held, 2 * before, rtol=1e-6)
    net.clear_param_diffs()
    assert not held.any()


def test_backward_with_top_diffs_and_force_backward(tiny):
    x, _ = batch()
    net = caffe.Net(str(tiny / "deploy.prototxt"), caffe.TEST,
                    weights=str(tiny / "weights.caffemodel"))
    net.forward(data=x)
    top = np.zeros((2, 5), np.float32)
    top[:, 1] = 1
    diffs = net.backward(prob=top)
    ref = _ref(tiny, "test")
    xt = torch.from_numpy(x).requires_grad_()
    ref.keep_graph = True
    out = ref(data=xt)
    out["prob"].backward(torch.from_numpy(top))
    np.testing.assert_allclose(diffs["data"], xt.grad.numpy(), rtol=1e-5, atol=1e-8)
    with pytest.raises(ValueError, match="do not match net outputs"):
        net.backward(ip=top)


def test_backward_start_end(tiny):
    x, y = batch()
    net = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN,
                    weights=str(tiny / "weights.caffemodel"))
    net.forward(data=x, label=y)
    out = net.backward(start="loss", end="ip")
    assert set(out) == {"pool"}
    assert out["pool"].any()
    assert net.params["ip"][0].diff.any()
    assert not net.params["conv"][0].diff.any()  # below `end`: untouched


def test_test_net_without_force_backward_leaves_diffs(tiny):
    net = caffe.Net(str(tiny / "train.prototxt"), caffe.TEST,
                    weights=str(tiny / "weights.caffemodel"))
    x, y = batch()
    net.forward(data=x, label=y)
    net.backward()
    assert not net.params["conv"][0].diff.any()


def test_forward_all_and_forward_backward_all(tiny):
    rng = np.random.RandomState(3)
    x = rng.randn(5, 3, 8, 8).astype(np.float32)  # 5 images, batch 2: last batch padded
    net = caffe.Net(str(tiny / "deploy.prototxt"), caffe.TEST,
                    weights=str(tiny / "weights.caffemodel"))
    out = net.forward_all(data=x, blobs=["ip"])
    assert out["prob"].shape == (5, 5) and out["ip"].shape == (5, 5)
    one = net.forward(data=x[4:5].repeat(2, 0))["prob"][0]
    np.testing.assert_allclose(out["prob"][4], one, rtol=1e-6)
    top = np.ones((5, 5), np.float32)
    outs, diffs = net.forward_backward_all(data=x, prob=top)
    assert outs["prob"].shape == (5, 5) and diffs["data"].shape == (5, 3, 8, 8)


def test_input_reshape_and_net_reshape(tiny):
    net = caffe.Net(str(tiny / "deploy.prototxt"), caffe.TEST,
                    weights=str(tiny / "weights.caffemodel"))
    net.blobs["data"].reshape(1, 3, 8, 8)
    net.reshape()
    assert net.blobs["conv"].shape == (1, 4, 8, 8) and net.blobs["prob"].shape == (1, 5)
    net.blobs["data"].data[...] = 1
    assert net.forward()["prob"].shape == (1, 5)


def test_save_load_hdf5_share_with(tiny, tmp_path):
    p, w = str(tiny / "train.prototxt"), str(tiny / "weights.caffemodel")
    net = caffe.Net(p, caffe.TRAIN, weights=w)
    net.params["ip"][1].data[...] = 7
    net.save(str(tmp_path / "a.caffemodel"))
    net.save_hdf5(str(tmp_path / "a.caffemodel.h5"))
    for loader in ("copy_from", "load_hdf5"):
        other = caffe.Net(p, caffe.TEST)
        getattr(other, loader)(str(tmp_path / ("a.caffemodel" if loader == "copy_from"
                                                else "a.caffemodel.h5")))
        np.testing.assert_array_equal(other.params["ip"][1].data, 7)
    test = caffe.Net(p, caffe.TEST)
    test.share_with(net)
    net.params["conv"][0].data[...] = 3
    assert (test.params["conv"][0].data == 3).all()


def test_params_on_device_hands_the_caffenet_both_ways(tiny):
    """Writes through the param blobs are in the CaffeNet's parameters inside the block;
    what the block writes there (a broadcast, in caffe train's multi-GPU runs) the blobs read."""
    net = caffe.Net(str(tiny / "deploy.prototxt"), caffe.TEST,
                    weights=str(tiny / "weights.caffemodel"))
    net.params["ip"][1].data[...] = 5
    with net.params_on_device() as caffe_net:
        assert caffe_net is net.caffe_net
        params = [info.param for info in caffe_net.learnable_params()]
        assert any(torch.equal(p.detach().cpu(), torch.full((5,), 5.0)) for p in params)
        for p in params:
            p.data.fill_(2)
    assert (net.params["ip"][1].data == 2).all() and (net.params["ip"][0].data == 2).all()

def test_introspection(tiny):
    net = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN)
    assert net._layer_names == ["data", "conv", "relu", "pool", "ip", "loss"]
    assert [l.type for l in net.layers] == ["Input", "Convolution", "ReLU", "Pooling",
                                            "InnerProduct", "SoftmaxWithLoss"]
    assert len(net.layers[1].blobs) == 2 and len(net.layers[2].blobs) == 0
    assert net.layer_dict["ip"] is net.layers[4]
    assert net.inputs == ["data", "label"] and net.outputs == ["loss"]
    assert net.top_names["relu"] == ["conv"] and net.bottom_names["loss"] == ["ip", "label"]
    assert net.blob_loss_weights == {"data": 0, "label": 0, "conv": 0, "pool": 0, "ip": 0,
                                     "loss": 1.0}
    with pytest.raises(ValueError, match="MemoryData"):
        net.set_input_arrays(np.zeros((2, 3, 8, 8), np.float32), np.zeros(2, np.float32))


SPLIT_NET = """
force_backward: true
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 dim: 3 dim: 3 } } }
layer { name: "a" type: "Convolution" bottom: "data" top: "a"
  convolution_param { num_output: 2 kernel_size: 1 weight_filler { type: "gaussian" std: 1 } } }
layer { name: "b" type: "Power" bottom: "data" top: "b" power_param { scale: 3 } }
layer { name: "sum" type: "Eltwise" bottom: "a" bottom: "b" top: "sum" }
"""


def test_split_layers_as_caffe_inserts_them(tmp_path):
    (tmp_path / "s.prototxt").write_text(SPLIT_NET)
    net = caffe.Net(str(tmp_path / "s.prototxt"), caffe.TEST)
    assert net._layer_names == ["in", "data_in_0_split", "a", "b", "sum"]
    assert list(net.blobs) == ["data", "data_in_0_split_0", "data_in_0_split_1", "a", "b", "sum"]
    assert net.layers[1].type == "Split"
    assert net.bottom_names["a"] == ["data_in_0_split_0"]
    assert net.bottom_names["b"] == ["data_in_0_split_1"]
    x = np.random.RandomState(0).randn(1, 2, 3, 3).astype(np.float32)
    net.forward(data=x)
    np.testing.assert_array_equal(net.blobs["data_in_0_split_1"].data, x)  # shared data
    net.backward(sum=np.ones((1, 2, 3, 3), np.float32))
    np.testing.assert_allclose(net.blobs["data_in_0_split_1"].diff, 3.0)  # Power's reader
    np.testing.assert_allclose(net.blobs["data"].diff,  # the Split sums its tops' diffs
                               net.blobs["data_in_0_split_0"].diff + 3.0, rtol=1e-6)


STATE_NET = """
layer { name: "in" type: "Input" top: "data" input_param { shape { dim: 1 dim: 2 } } }
layer { name: "deep" type: "Power" bottom: "data" top: "deep"
  include { phase: TEST stage: "x" min_level: 1 } }
layer { name: "train_only" type: "Power" bottom: "data" top: "t" include { phase: TRAIN } }
"""


def test_phase_level_and_stages_choose_layers(tmp_path):
    (tmp_path / "n.prototxt").write_text(STATE_NET)
    p = str(tmp_path / "n.prototxt")
    assert caffe.Net(p, caffe.TEST)._layer_names == ["in"]
    assert caffe.Net(p, caffe.TEST, level=1, stages=["x"])._layer_names == ["in", "deep"]
    assert caffe.Net(p, caffe.TEST, level=0, stages=["x"])._layer_names == ["in"]
    assert caffe.Net(p, caffe.TRAIN)._layer_names == ["in", "train_only"]


def test_set_input_arrays_feeds_memory_data(tmp_path):
    (tmp_path / "m.prototxt").write_text("""
layer { name: "mem" type: "MemoryData" top: "data" top: "label"
  memory_data_param { batch_size: 2 channels: 1 height: 2 width: 2 } }
layer { name: "sum" type: "Reduction" bottom: "data" top: "sum" reduction_param { axis: 1 } }
""")
    net = caffe.Net(str(tmp_path / "m.prototxt"), caffe.TEST)
    data = np.arange(16, dtype=np.float32).reshape(4, 1, 2, 2)
    net.set_input_arrays(data, np.arange(4, dtype=np.float32))
    np.testing.assert_array_equal(net.forward()["sum"], data[:2].reshape(2, -1).sum(1))
    net.forward()
    np.testing.assert_array_equal(net.blobs["label"].data.ravel(), [2, 3])


def test_forward_all_without_or_with_ragged_arrays_says_so(tiny):
    net = caffe.Net(str(tiny / "deploy.prototxt"), caffe.TEST,
                    weights=str(tiny / "weights.caffemodel"))
    with pytest.raises(ValueError, match="data=..."):
        net.forward_all()
    with pytest.raises(ValueError, match="data=..."):
        net.forward_backward_all()
    x = np.zeros((3, 3, 8, 8), np.float32)
    with pytest.raises(ValueError, match="different lengths"):
        net.forward_backward_all(data=x, prob=np.zeros((2, 5), np.float32))


def test_typos_and_unknown_types_are_one_complete_error(tmp_path):
    """caffe.Net reports what CaffeNet reports: every unknown field and every layer type with
    no implementation, in one error (not the fields alone)."""
    from caffe_import.errors import CaffeFormatError

    path = tmp_path / "typo.prototxt"
    path.write_text('''name: "t"
layer { name: "data" type: "Input" top: "data" input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }
layer { name: "conv" type: "Convolution" bottom: "data" top: "conv"
  convolution_param { num_ouput: 2 kernel_size: 3 } }
layer { name: "x" type: "NoSuchLayerT" bottom: "conv" top: "x" }
''')
    with pytest.raises(CaffeFormatError) as ours:
        caffe.Net(str(path), caffe.TEST)
    with pytest.raises(CaffeFormatError) as plain:
        CaffeNet(str(path))
    assert str(ours.value) == str(plain.value)
    assert "num_ouput" in str(ours.value) and "NoSuchLayerT" in str(ours.value)


BROKEN_LAYER = '''
import caffe

class Broken(caffe.Layer):
    def setup(self, bottom, top):
        pass
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
    def forward(self, bottom, top):
        raise RuntimeError("the layer's own error")
'''

BROKEN_NET = """
input: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }
layer { name: "odd" type: "Python" bottom: "data" top: "y"
  python_param { module: "broken_layer_t" layer: "Broken" } }
"""


def test_a_layer_error_keeps_its_type_and_names_the_layer(tmp_path, monkeypatch):
    """Python 3.10 has no BaseException.add_note (caffe_import.compat.add_note): the user still
    sees the layer's own error, with the layer named, never an AttributeError."""
    (tmp_path / "broken_layer_t.py").write_text(BROKEN_LAYER)
    (tmp_path / "net.prototxt").write_text(BROKEN_NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.delitem(sys.modules, "broken_layer_t", raising=False)
    with caffe_aliased():  # the module does `import caffe`, as under `caffe-import run`
        net = caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
        with pytest.raises(RuntimeError, match="the layer's own error") as err:
            net.forward()
    sys.modules.pop("broken_layer_t", None)
    assert err.value.__notes__ == ["in Caffe layer 'odd' (type Python), bottoms [(1, 2, 3, 3)]"]
    shown = "".join(traceback.format_exception(err.type, err.value, err.tb))
    assert "RuntimeError: the layer's own error" in shown and "in Caffe layer 'odd'" in shown


def test_backward_with_no_forward_uses_the_current_buffers(tiny):
    """Caffe's Backward reads the blobs as they stand: no forward needed, none done."""
    net = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN,
                    weights=str(tiny / "weights.caffemodel"))
    rng = np.random.RandomState(3)
    net.blobs["pool"].data[...] = rng.rand(*net.blobs["pool"].data.shape)
    top = rng.rand(*net.blobs["ip"].diff.shape).astype(np.float32)
    net.blobs["ip"].diff[...] = top
    out = net.backward(start="ip", end="ip")
    w = net.params["ip"][0].data
    np.testing.assert_allclose(out["pool"].reshape(2, -1), top @ w, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(net.params["ip"][0].diff,
                               top.T @ net.blobs["pool"].data.reshape(2, -1), rtol=1e-5)
    assert not net.blobs["ip"].data.any()  # tops keep their data: nothing ran forward
    assert not net.params["conv"][0].diff.any()


def test_each_backward_with_no_forward_reads_the_buffers_again(tiny):
    net = caffe.Net(str(tiny / "train.prototxt"), caffe.TRAIN,
                    weights=str(tiny / "weights.caffemodel"))
    net.blobs["ip"].diff[...] = 1.0
    net.blobs["pool"].data[...] = 1.0
    net.backward(start="ip", end="ip")
    first = net.params["ip"][0].diff.copy()
    net.clear_param_diffs()
    net.blobs["pool"].data[...] = 2.0  # an edit between two backward calls counts
    net.backward(start="ip", end="ip")
    np.testing.assert_allclose(net.params["ip"][0].diff, 2 * first, rtol=1e-6)
    x, y = batch()
    net.forward(data=x, label=y)  # a forward records again: the usual path
    net.backward()
    assert net.params["conv"][0].diff.any()
