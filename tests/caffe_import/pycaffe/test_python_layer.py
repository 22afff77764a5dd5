"""caffe_import.pycaffe.python_layer: Python layers run as pycaffe runs them, and their
backward feeds autograd; plain CaffeNet still refuses to import what a model names."""
from __future__ import annotations

import sys
import textwrap

import numpy as np
import pytest
import torch

from caffe_import import pycaffe as caffe
from caffe_import.errors import CaffeFormatError
from caffe_import.net import CaffeNet

MODULE = '''
import caffe
import numpy as np

class Feed(caffe.Layer):
    """A data layer: setup once, reshape + forward on every pass (counts them)."""
    def setup(self, bottom, top):
        self.params = eval(self.param_str)
        self.calls = []
        self.k = 0
    def reshape(self, bottom, top):
        self.calls.append("reshape")
        rng = np.random.RandomState(self.k)
        self.x = rng.randn(2, 3, 6, 6).astype(np.float32)
        top[0].reshape(*self.x.shape)
    def forward(self, bottom, top):
        self.calls.append("forward")
        top[0].data[...] = self.x * self.params["scale"]
        self.k += 1

class Cube(caffe.Layer):
    """y = x ** 3 with its own backward."""
    def setup(self, bottom, top):
        self.seen_phase = self.phase
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
    def forward(self, bottom, top):
        top[0].data[...] = bottom[0].data ** 3
    def backward(self, top, propagate_down, bottom):
        if propagate_down[0]:
            bottom[0].diff[...] = 3 * bottom[0].data ** 2 * top[0].diff

class Gain(caffe.Layer):
    """y = g * x with a learnable g (a param blob of the Python layer)."""
    def setup(self, bottom, top):
        self.blobs.add_blob(1)
        self.blobs[0].data[...] = 2.0
    def reshape(self, bottom, top):
        top[0].reshape(*bottom[0].data.shape)
    def forward(self, bottom, top):
        top[0].data[...] = self.blobs[0].data[0] * bottom[0].data
    def backward(self, top, propagate_down, bottom):
        self.blobs[0].diff[0] += (top[0].diff * bottom[0].data).sum()
        bottom[0].diff[...] = self.blobs[0].data[0] * top[0].diff
'''

NET = """
force_backward: true
layer { name: "feed" type: "Python" top: "x"
  python_param { module: "pylayers_t" layer: "Feed" param_str: "{'scale': 0.5}" } }
layer { name: "conv" type: "Convolution" bottom: "x" top: "conv"
  convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.5 } } }
layer { name: "cube" type: "Python" bottom: "conv" top: "cube"
  python_param { module: "pylayers_t" layer: "Cube" } }
layer { name: "gain" type: "Python" bottom: "cube" top: "gain"
  python_param { module: "pylayers_t" layer: "Gain" } }
layer { name: "loss" type: "EuclideanLoss" bottom: "gain" bottom: "conv" top: "loss" }
"""


@pytest.fixture
def pynet(tmp_path, monkeypatch):
    (tmp_path / "pylayers_t.py").write_text(textwrap.dedent(MODULE))
    (tmp_path / "net.prototxt").write_text(NET)
    monkeypatch.syspath_prepend(str(tmp_path))
    from caffe_import.pycaffe.runner import caffe_aliased

    with caffe_aliased():  # the module does `import caffe`, as under `caffe-import run`
        yield tmp_path
    sys.modules.pop("pylayers_t", None)


def test_setup_reshape_forward_order_and_attributes(pynet):
    net = caffe.Net(str(pynet / "net.prototxt"), caffe.TRAIN)
    feed = net.layers[0]
    assert type(feed).__name__ == "Feed" and feed.type == "Python"
    assert feed.param_str == "{'scale': 0.5}" and feed.phase == caffe.TRAIN
    assert net.layer_dict["cube"].seen_phase == caffe.TRAIN
    assert "conv_conv_0_split" in net.layer_dict  # conv has two readers: Caffe splits it
    assert feed.calls == ["reshape"]  # LayerSetUp: setup, then reshape
    assert net.blobs["x"].shape == (2, 3, 6, 6) and net.blobs["cube"].shape == (2, 2, 4, 4)
    net.forward()
    assert feed.calls == ["reshape", "reshape", "forward"]  # Forward: reshape, then forward
    np.testing.assert_allclose(net.blobs["x"].data,
                               np.random.RandomState(0).randn(2, 3, 6, 6) * 0.5, rtol=1e-6)
    assert list(net.params) == ["conv", "gain"] and net.params["gain"][0].data[0] == 2.0


def test_python_backward_feeds_autograd(pynet):
    net = caffe.Net(str(pynet / "net.prototxt"), caffe.TRAIN)
    net.forward()
    net.backward()
    x = torch.from_numpy(net.blobs["x"].data.copy()).requires_grad_()
    w = torch.from_numpy(net.params["conv"][0].data.copy()).requires_grad_()
    b = torch.from_numpy(net.params["conv"][1].data.copy()).requires_grad_()
    g = torch.tensor(2.0, requires_grad=True)
    conv = torch.nn.functional.conv2d(x, w, b)
    loss = ((g * conv ** 3 - conv) ** 2).sum() / 2 / 2  # EuclideanLoss: / (2 N)
    loss.backward()
    assert float(net.blobs["loss"].data) == pytest.approx(float(loss.detach()), rel=1e-5)
    np.testing.assert_allclose(net.params["conv"][0].diff, w.grad.numpy(), rtol=1e-4, atol=1e-6)
    np.testing.assert_allclose(net.params["gain"][0].diff[0], float(g.grad), rtol=1e-4)
    np.testing.assert_allclose(net.blobs["x"].diff, x.grad.numpy(), rtol=1e-4, atol=1e-6)


def test_plain_caffenet_still_refuses(pynet):
    with pytest.raises(CaffeFormatError, match="not registered"):
        CaffeNet(str(pynet / "net.prototxt"))


def test_missing_module_is_named(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET.replace("pylayers_t", "no_such_module_here"))
    with pytest.raises(ImportError, match="no_such_module_here"):
        caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)


def test_unimportable_module_is_one_clear_error(tmp_path, monkeypatch):
    """No chain of importlib frames: one ImportError naming the layer, the module and where
    it was looked for; a module whose own import fails says so."""
    (tmp_path / "net.prototxt").write_text(NET.replace("pylayers_t", "no_such_module_here"))
    monkeypatch.syspath_prepend(str(tmp_path / "first_entry"))
    with pytest.raises(ImportError) as info:
        caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)
    err = info.value
    assert err.__cause__ is None and err.__suppress_context__
    msg = str(err)
    assert "'no_such_module_here'" in msg and "no module named" in msg
    assert "Python layer '" in msg and str(tmp_path / "first_entry") in msg
    (tmp_path / "broken_layers.py").write_text("import not_installed_dependency_xyz\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    (tmp_path / "net.prototxt").write_text(NET.replace("pylayers_t", "broken_layers"))
    with pytest.raises(ImportError, match="found but its own import failed.*"
                       "not_installed_dependency_xyz"):
        caffe.Net(str(tmp_path / "net.prototxt"), caffe.TEST)


def test_an_exception_in_setup_reaches_the_caller_as_itself(pynet):
    """pycaffe raises the layer's own exception from ``caffe.Net`` (BVLC's test_exception)."""
    (pynet / "pylayers_broken.py").write_text(textwrap.dedent('''
        import caffe
        class Oops(Exception):
            pass
        class Broken(caffe.Layer):
            def setup(self, bottom, top):
                raise Oops("bad param_str: " + self.param_str)
        '''))
    (pynet / "broken.prototxt").write_text(
        'layer { name: "b" type: "Python" top: "y" '
        'python_param { module: "pylayers_broken" layer: "Broken" param_str: "x=1" } }')
    with pytest.raises(Exception) as info:
        caffe.Net(str(pynet / "broken.prototxt"), caffe.TEST)
    assert type(info.value).__name__ == "Oops" and str(info.value) == "bad param_str: x=1"
    assert info.value.__suppress_context__ and info.value.__cause__ is None
    assert info.traceback[-1].name == "setup"  # its own frame, not a wrapper's
    sys.modules.pop("pylayers_broken", None)
