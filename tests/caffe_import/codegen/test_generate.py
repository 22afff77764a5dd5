"""model.py's text: one class reading like hand-written code (layers as attributes named after
Caffe's, the original name where changed, standard torch.nn modules, in-place ReLUs where
Caffe's are), a docstring naming the files and the generator, imports only of what it uses,
Python layers refused by name."""
from __future__ import annotations

import ast

import pytest
import torch

from caffe_import.codegen import generate, load_generated
from caffe_import.codegen.generate import check_class_name, sha256_file
from caffe_import.errors import UsageError
from caffe_import.layers.base import CaffeLayer
from caffe_import.layers.python_layer import PythonLayerRegistry
from caffe_import.net import CaffeNet
from caffe_import.version import __version__
from support import case_dir
from support.versions import needs_torch_export

NET = '''
layer { name: "in/put" type: "Input" top: "data/0" top: "label"
        input_param { shape { dim: 1 dim: 3 dim: 8 dim: 8 } shape { dim: 1 dim: 1 dim: 6 dim: 6 } } }
layer { name: "conv1/3x3" type: "Convolution" bottom: "data/0" top: "conv1"
        convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "gaussian" std: 0.1 } } }
layer { name: "relu1" type: "ReLU" bottom: "conv1" top: "conv1" }
layer { name: "relu_in" type: "ReLU" bottom: "data/0" top: "data/0" }
layer { name: "loss" type: "SoftmaxWithLoss" bottom: "conv1" bottom: "label" top: "loss"
        loss_param { ignore_label: 255 } }
'''


@pytest.fixture(scope="module")
def fcn8s():
    d = case_dir("voc_fcn8s_narrow")
    net = CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"))
    return d, net, generate(net, net_path=d / "net.prototxt", weights_path=d / "weights.caffemodel")


def test_the_docstring_names_the_files_their_hashes_and_the_version(fcn8s):
    d, _, gen = fcn8s
    doc = ast.get_docstring(ast.parse(gen.source))
    assert f"caffe_import {__version__}" in doc
    assert f"net.prototxt (sha256 {sha256_file(d / 'net.prototxt')})" in doc
    assert f"weights.caffemodel (sha256 {sha256_file(d / 'weights.caffemodel')})" in doc


def test_it_imports_only_torch(fcn8s):
    tree = ast.parse(fcn8s[2].source)
    modules = {a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
    modules |= {n.module for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)}
    assert modules <= {"torch", "torch.nn.functional", "math"}, modules


def test_one_class_one_attribute_per_layer_with_params_or_a_module(fcn8s):
    _, net, gen = fcn8s
    classes = [n for n in ast.parse(gen.source).body if isinstance(n, ast.ClassDef)]
    assert [c.name for c in classes] == ["Net"]
    assert "self.conv1_1 = nn.Conv2d(3, 4, kernel_size=3, padding=100)" in gen.source
    assert "self.upscore2 = nn.ConvTranspose2d(21, 21, kernel_size=4, stride=2, bias=False)" \
        in gen.source
    assert "self.relu1_1 = nn.ReLU(inplace=True)" in gen.source
    assert "self.pool1 = nn.MaxPool2d(2, stride=2, ceil_mode=True)" in gen.source
    assert "score = upscore8[:, :, 31:31 + data.shape[2], 31:31 + data.shape[3]]" in gen.source
    model = load_generated(gen)
    layers_with_params = {name for name, params in net.params.items() if params}
    assert {k.split(".")[0] for k in model.state_dict()} == layers_with_params


def test_each_blob_is_dropped_after_its_last_reader(fcn8s):
    forward = fcn8s[2].source.split("def forward")[1].splitlines()
    after = {line.strip(): forward[k + 1].strip() for k, line in enumerate(forward[:-1])}
    assert after["conv1_2 = self.conv1_2(conv1_1)"] == "del conv1_1"
    assert after["conv5_1 = self.conv5_1(pool4)"] != "del pool4"  # score_pool4 reads it later
    assert after["score_pool4 = self.score_pool4(pool4)"] == "del pool4"
    assert after["fuse_pool4 = upscore2 + score_pool4c  # Eltwise 'fuse_pool4'"] \
        == "del upscore2, score_pool4c"
    dropped = {n for line in forward if line.strip().startswith("del ")
               for n in line.strip()[4:].split(", ")}
    assert "data" not in dropped and "score" not in dropped  # the caller's, the result
    assert forward[-1].strip() == "return score"


def test_state_dict_keys_follow_the_layer_names_and_load_strictly(fcn8s):
    _, net, gen = fcn8s
    model = load_generated(gen)
    assert list(gen.state) == sorted(model.state_dict())
    assert "score_fr.weight" in gen.state and "upscore8.weight" in gen.state


def test_renamed_layers_say_their_caffe_name_and_inputs_are_not_overwritten():
    gen = generate(CaffeNet(NET, phase="train"))
    assert "self.conv1_3x3 = nn.Conv2d(3, 2, kernel_size=3)  # Caffe layer 'conv1/3x3'" \
        in gen.source
    assert "self.relu1 = nn.ReLU(inplace=True)" in gen.source
    assert "self.relu_in = nn.ReLU()" in gen.source  # its bottom is the caller's tensor
    assert "def forward(self, data_0: torch.Tensor, label: torch.Tensor) -> dict[str, torch.Tensor]:" \
        in gen.source
    assert "loss = caffe_softmax_loss(conv1, label, ignore_label=255)" in gen.source
    assert "self.loss_weights = {'loss': 1.0}" in gen.source


def test_several_outputs_come_back_as_a_dict():
    gen = generate(CaffeNet(NET + 'layer { name: "p" type: "Softmax" bottom: "conv1" '
                                  'top: "prob" }', phase="test"))
    assert "-> dict[str, torch.Tensor]:" in gen.source
    assert "return {'data/0': data_0, 'loss': loss, 'prob': prob}" in gen.source


class Double(CaffeLayer):
    def top_shapes(self, bottom_shapes):
        return [bottom_shapes[0]]

    def forward(self, x):
        return (x * 2,)


def test_python_layers_are_refused_by_name():
    text = NET + ('layer { name: "py" type: "Python" bottom: "conv1" top: "out" '
                  'python_param { module: "my.layers" layer: "Thing" } }')
    net = CaffeNet(text, phase="test",
                   python_layers=PythonLayerRegistry({("my.layers", "Thing"): Double}))
    with pytest.raises(UsageError, match=r"layer 'py' is a Python layer \(my.layers.Thing\)"):
        generate(net)


@pytest.mark.parametrize("name", ["1x", "my-net", "nn", "class Foo"])
def test_bad_class_names_are_refused(name):
    with pytest.raises(UsageError, match="class name"):
        check_class_name(name)


def test_the_fcn8s_module_compiles_as_one_graph(fcn8s):
    model = load_generated(fcn8s[2]).eval()
    x = torch.randn(1, 3, 61, 75)
    with torch.no_grad():
        expected = model(x)
        compiled = torch.compile(model, fullgraph=True, backend="aot_eager")
        torch.testing.assert_close(compiled(x), expected, rtol=0, atol=0)


@needs_torch_export
def test_the_fcn8s_module_exports(fcn8s):
    model = load_generated(fcn8s[2]).eval()
    x = torch.randn(1, 3, 61, 75)
    program = torch.export.export(model, (x,))
    with torch.no_grad():
        torch.testing.assert_close(program.module()(x), model(x), rtol=0, atol=0)


def _deleted(source: str) -> list[str]:
    """Every name a ``del`` statement of ``forward`` deletes, in order."""
    forward = next(n for n in ast.walk(ast.parse(source))
                   if isinstance(n, ast.FunctionDef) and n.name == "forward")
    return [t.id for n in ast.walk(forward) if isinstance(n, ast.Delete) for t in n.targets]


def test_a_silenced_blob_is_deleted_once():
    text = NET + ('layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" '
                  'convolution_param { num_output: 2 kernel_size: 1 } }\n'
                  'layer { name: "mute" type: "Silence" bottom: "conv2" }')
    gen = generate(CaffeNet(text, phase="test"))
    deleted = _deleted(gen.source)
    assert deleted.count("conv2") == 1 and deleted.count("conv1") == 1
    model = load_generated(gen).eval()
    with torch.no_grad():
        model(torch.randn(1, 3, 8, 8), torch.zeros(1, 1, 6, 6))


def test_a_blob_silenced_before_a_later_reader_lives_until_that_reader():
    """Caffe's Silence only marks a blob unused as an output; a layer after it may still read
    the blob, so the module must not drop it at the Silence."""
    text = NET + ('layer { name: "mute" type: "Silence" bottom: "conv1" }\n'
                  'layer { name: "conv2" type: "Convolution" bottom: "conv1" top: "conv2" '
                  'convolution_param { num_output: 2 kernel_size: 1 } }')
    net = CaffeNet(text, phase="test")
    gen = generate(net)
    assert _deleted(gen.source).count("conv1") == 1
    model = load_generated(gen).eval()
    model.load_state_dict(gen.state)
    x, y = torch.randn(1, 3, 8, 8), torch.zeros(1, 1, 6, 6)
    with torch.no_grad():
        out = model(x, y)
        expected = net(**dict(zip(net.inputs, (x, y))))
    assert set(expected) >= {"conv2"}
    got = out if isinstance(out, dict) else {net.outputs[0]: out}
    torch.testing.assert_close(got["conv2"], expected["conv2"], rtol=0, atol=0)
