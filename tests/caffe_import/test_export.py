"""Deploy nets leave Python: torch.export, ONNX and torch.compile reproduce the eager net (and
so Caffe's numbers)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe_import import compat
from caffe_import import export as ex
from caffe_import.export import onnx as ex_onnx
from caffe_import.export import verify as ex_verify
from caffe_import.cli import main
from caffe_import.errors import CaffeFormatError, UsageError
from caffe_import.parity import read_reference
from caffe_import.layers.base import CaffeLayer
from caffe_import.layers.registry import get as get_layer
from caffe_import.layers.registry import register
from support import ROOT, case_dir
from support.versions import needs_torch_export

CONV = "layers_conv"              # convolutions and deconvolutions of every shape
ACT = "layers_activations"        # element-wise layers only: quick to run anywhere
FCN = "voc_fcn32s_narrow"         # a whole FCN: conv, pool, deconv, crop


def _build(case: str, phase: str = "test"):
    from caffe_import.net import CaffeNet

    d = case_dir(case)
    return CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"), phase=phase)


@pytest.fixture(scope="module")
def nets():
    cache: dict[str, object] = {}

    def get(case: str):
        if case not in cache:
            cache[case] = _build(case)
        return cache[case]

    return get


def _ref(case: str):
    return read_reference(case_dir(case) / "reference.h5")


# ----------------------------------------------------------------------- torch.export
@needs_torch_export
def test_exported_program_reproduces_eager_and_reloads(tmp_path, nets):
    net = nets(CONV)
    program = ex.export_program(net)
    diffs = ex.verify_program(program, net)
    assert set(diffs) == set(net.outputs) and max(diffs.values()) <= 1e-6
    ex.save_program(program, tmp_path / "conv.pt2")
    loaded = torch.export.load(tmp_path / "conv.pt2")
    data = torch.from_numpy(_ref(CONV).inputs["data"])
    got = loaded.module()(data)
    eager = net(data=data)
    for name, value in zip(net.outputs, got):
        torch.testing.assert_close(value, eager[name], rtol=0, atol=0)
    assert [p.name for p in tmp_path.iterdir()] == ["conv.pt2"]


FORKS = ROOT / "tests" / "fixtures" / "forks"


@needs_torch_export
@pytest.mark.parametrize("case", ["segnet/segnet_basic_inference_narrow",
                                  "fast_rcnn/zf_fast_rcnn_test_narrow"])
def test_data_dependent_checks_stay_out_of_the_trace(case):
    """SegNet's unpooling and Fast R-CNN's RoI pooling check index values eagerly only; traced,
    RoI pooling sizes its windows by the feature map, and the rois it is checked with are
    valid ones (batch index in range, boxes in the image), as ROIPooling.example_bottom makes."""
    from caffe_import.net import CaffeNet

    d = FORKS / case
    net = CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"), phase="test")
    program = ex.export_program(net)
    assert max(ex.verify_program(program, net).values()) < 1e-5


if get_layer("TestUntraceable") is None:
    @register("TestUntraceable")
    class _TestUntraceable(CaffeLayer):
        def top_shapes(self, bottom_shapes):
            return [bottom_shapes[0]]

        def forward(self, x):
            if int(x.max()) > 1e9:  # a branch on the data: torch.export cannot trace it
                x = -x
            return (x,)


@needs_torch_export
def test_a_failed_trace_is_one_paragraph_naming_the_layer_and_line(tmp_path, capsys):
    net_path = tmp_path / "net.prototxt"
    net_path.write_text('name: "u"\ninput: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }\n'
                        'layer { name: "odd" type: "TestUntraceable" bottom: "data" top: "y" }\n')
    from caffe_import.net import CaffeNet

    with pytest.raises(CaffeFormatError) as info:
        ex.export_program(CaffeNet(str(net_path)))
    msg = str(info.value)
    assert "\n" not in msg and "TORCH_LOGS" not in msg, msg
    assert "layer 'odd' (_TestUntraceable)" in msg and "test_export.py:" in msg
    assert "`if int(x.max()) > 1e9:" in msg
    assert capsys.readouterr().err == ""  # no partial graph printed around it


@needs_torch_export
def test_exported_fcn_gives_caffes_score(nets):
    net, ref = nets(FCN), _ref(FCN)
    program = ex.export_program(net, dict(ref.inputs), outputs=["score"])
    (score,) = program.module()(torch.from_numpy(ref.inputs["data"]))
    want = ref.blobs["score"]
    rel = np.linalg.norm(score.detach().numpy() - want) / np.linalg.norm(want)
    assert rel <= 1e-5


@needs_torch_export
def test_export_leaves_no_tracer_tensors_on_the_net(nets):
    net = nets(ACT)
    before = net.blobs
    ex.export_program(net)
    assert net.blobs is before
    assert all(type(t) is torch.Tensor for t in net.blobs.values())


@pytest.mark.parametrize("suffix", [".pt2", ".onnx"])
def test_export_on_an_older_torch_says_which_torch_it_needs(nets, tmp_path, monkeypatch, suffix):
    """torch 2.1-2.7 run, convert and check nets; exporting needs torch.export of 2.8."""
    monkeypatch.setattr(compat, "torch_version", lambda: (2, 1))
    with pytest.raises(UsageError, match=rf"^\S.* needs torch >= {compat.TORCH_FOR_EXPORT} "
                                         r"\(this is torch .*\)[^\n]*$"):
        ex.write_export(nets(ACT), tmp_path / f"m{suffix}", say=lambda line: None)
    assert not list(tmp_path.iterdir())


def test_export_wants_a_deploy_net():
    with pytest.raises(CaffeFormatError, match="phase='test'"):
        ex.export_program(_build(ACT, phase="train"))


def test_input_shapes_parse_and_are_checked(nets):
    assert ex.parse_shape("1x3x500x500") == (1, 3, 500, 500)
    assert ex.parse_shape("2,3, 4") == (2, 3, 4)
    for bad in ("", "1x0x3", "axb", "1x-3", "1xx", "x2"):
        with pytest.raises(CaffeFormatError):
            ex.parse_shape(bad)
    with pytest.raises(CaffeFormatError, match="not inputs"):
        ex.example_inputs(nets(ACT), {"image": (1, 3, 4, 4)})
    assert ex.example_inputs(nets(ACT), {"data": (1, 5, 3, 3)})["data"].shape == (1, 5, 3, 3)


# ----------------------------------------------------------------------- ONNX
@needs_torch_export
def test_onnx_export_carries_blob_names_and_reproduces_eager(tmp_path, nets):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")

    net = nets(ACT)
    path = ex.export_onnx(net, tmp_path / "act.onnx")
    model = onnx.load(str(path))
    onnx.checker.check_model(model)
    assert [i.name for i in model.graph.input] == ["data"]
    # 'tanh' is both a blob and the exporter's own name for the TanH value: still valid SSA
    assert [o.name for o in model.graph.output] == net.outputs
    assert max(ex.verify_onnx(path, net).values()) <= 1e-5
    assert [p.name for p in tmp_path.iterdir()] == ["act.onnx"]


@needs_torch_export
def test_onnx_export_of_an_fcn(tmp_path, nets):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")

    net = nets(FCN)
    path = ex.export_onnx(net, tmp_path / "fcn.onnx", outputs=["score"])
    ops = {n.op_type for n in onnx.load(str(path)).graph.node}
    assert {"Conv", "MaxPool", "ConvTranspose"} <= ops or {"Conv", "ConvTranspose"} <= ops
    try:
        diffs = ex.verify_onnx(path, net, outputs=["score"])
    except ex.VerificationUnavailable as exc:  # no onnxruntime and an op the evaluator lacks
        pytest.skip(str(exc))
    assert diffs["score"] <= 1e-4


# ----------------------------------------------------------------------- torch.compile
@pytest.mark.slow  # inductor's first compile takes ~30 s on a small CPU
def test_torch_compile_matches_eager(nets):
    net = nets(CONV)
    data = torch.from_numpy(_ref(CONV).inputs["data"])
    compiled = ex.compile_net(net)
    got = compiled(data=data)
    eager = net(data=data)
    for name in net.outputs:
        torch.testing.assert_close(got[name], eager[name], rtol=1e-4, atol=1e-5)


# ----------------------------------------------------------------------- CLI
@needs_torch_export
def test_cli_export_writes_and_verifies_both(tmp_path, capsys):
    pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    d = case_dir(ACT)
    pt2, onnx_path = tmp_path / "a.pt2", tmp_path / "a.onnx"
    assert main(["export", str(d / "net.prototxt"), str(d / "weights.caffemodel"),
                 "--torch-export", str(pt2), "--onnx", str(onnx_path),
                 "--input", "data=1x5x8x8"]) == 0
    out = capsys.readouterr().out
    assert out.count("matches eager") == 2
    program = torch.export.load(pt2)
    assert program.module()(torch.zeros(1, 5, 8, 8))[0].shape == (1, 5, 8, 8)


@needs_torch_export
def test_cli_export_errors(tmp_path, capsys):
    d = case_dir(ACT)
    argv = ["export", str(d / "net.prototxt"), str(d / "weights.caffemodel")]
    assert main(argv) == 2
    assert "nothing to do" in capsys.readouterr().err
    assert main(argv + ["--torch-export", str(tmp_path / "x.pt2"), "--input", "data=1xx"]) == 2
    assert main(argv + ["--torch-export", str(tmp_path / "x.pt2"), "--input", "nope=1x2"]) == 2
    # a shape the layers refuse is a format error naming the shapes, not a traceback
    assert main(argv + ["--torch-export", str(tmp_path / "x.pt2"), "--input", "data=3"]) == 2
    assert "input shapes {'data': (3,)}" in capsys.readouterr().err
    assert not list(tmp_path.iterdir())


# ----------------------------------------------------------------------- issue 17
FCN8S = ROOT / "fcn_repro" / "assets" / "voc_fcn8s_narrow"


def _cli(case_or_dir, *extra: str) -> list[str]:
    d = case_or_dir if not isinstance(case_or_dir, str) else case_dir(case_or_dir)
    return ["export", str(d / "net.prototxt"), str(d / "weights.caffemodel"), *extra]


@pytest.mark.parametrize("extra", [(), ("--no-verify",)])
def test_onnx_of_a_bf16_net_is_refused_before_anything_is_written(tmp_path, capsys, extra):
    """ONNX runtimes have no bfloat16 Conv: `--precision fast` is refused up front (no
    traceback, no file nobody can load), also with --no-verify and beside a .pt2."""
    pytest.importorskip("onnxscript")
    out, pt2 = tmp_path / "x.onnx", tmp_path / "x.pt2"
    rc = main(_cli(CONV, "--onnx", str(out), "--torch-export", str(pt2), "--precision", "fast",
                   *extra))
    err = capsys.readouterr().err
    assert rc == 2, err
    assert "bfloat16" in err and "--precision exact" in err and "Traceback" not in err
    assert list(tmp_path.iterdir()) == []


def test_convert_to_onnx_refuses_a_bf16_net(tmp_path, capsys):
    pytest.importorskip("onnxscript")
    d = case_dir(CONV)
    out = tmp_path / "x.onnx"
    rc = main(["convert", str(d / "net.prototxt"), str(d / "weights.caffemodel"), "-o", str(out),
               "--precision", "fast"])
    assert rc == 2 and "bfloat16" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


@needs_torch_export
def test_onnx_exports_a_float16_net_as_asked(tmp_path):
    onnx = pytest.importorskip("onnx")
    pytest.importorskip("onnxscript")
    from caffe_import.net import CaffeNet
    from caffe_import.precision import PrecisionPolicy

    d = case_dir(ACT)
    net = CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"),
                   precision=PrecisionPolicy("fp16", torch.float16))
    line = ex.write_export(net, tmp_path / "h.onnx", say=lambda text: None)
    assert "matches eager" in line
    onnx.checker.check_model(onnx.load(str(tmp_path / "h.onnx")))


@needs_torch_export
@pytest.mark.parametrize("kind", [".pt2", ".onnx"])
def test_an_export_that_fails_its_check_leaves_no_file(tmp_path, nets, monkeypatch, kind):
    if kind == ".onnx":
        pytest.importorskip("onnxscript")
    net = nets(ACT)
    real = ex.eager_outputs
    checker = ex_verify if kind == ".pt2" else ex_onnx  # where the kind's check looks it up
    monkeypatch.setattr(checker, "eager_outputs",
                        lambda *a, **k: tuple(t + 1 for t in real(*a, **k)))
    with pytest.raises(CaffeFormatError, match="does not reproduce the eager net"):
        ex.write_export(net, tmp_path / f"a{kind}", say=lambda text: None)
    assert list(tmp_path.iterdir()) == []


@needs_torch_export
def test_fcn8s_exports_with_dynamic_batch_height_and_width(tmp_path, capsys):
    """A fully convolutional net is exported for any image size (and batch): the .pt2 and the
    ONNX both run at two sizes and match the eager net there."""
    pytest.importorskip("onnxscript")
    ort = pytest.importorskip("onnxruntime")
    from caffe_import.net import CaffeNet

    pt2, onnx_path = tmp_path / "f.pt2", tmp_path / "f.onnx"
    assert main(_cli(FCN8S, "--torch-export", str(pt2), "--onnx", str(onnx_path))) == 0
    out = capsys.readouterr().out
    assert out.count("dynamic batch, height, width") == 2, out
    assert out.count("matches eager at data 1x3x61x75 and data 2x3x93x107") == 2, out
    assert "static" not in out
    import onnx

    dims = onnx.load(str(onnx_path)).graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_param or d.dim_value for d in dims] == ["batch", 3, "height", "width"]
    net = CaffeNet(str(FCN8S / "net.prototxt"), str(FCN8S / "weights.caffemodel"))
    program = torch.export.load(pt2).module()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    for shape in [(1, 3, 61, 75), (2, 3, 80, 100)]:
        x = torch.randn(shape)
        want = net(data=x)["score"]
        torch.testing.assert_close(program(x)[0], want, rtol=1e-4, atol=1e-4)
        (got,) = session.run(["score"], {"data": x.numpy()})
        torch.testing.assert_close(torch.from_numpy(got), want, rtol=1e-4, atol=1e-4)


@needs_torch_export
def test_a_net_that_fixes_its_size_exports_static_and_says_why(tmp_path, capsys):
    """An InnerProduct after a fixed-size feature map: height and width stay static, in one
    line naming the layer; the batch is still free."""
    pt2 = tmp_path / "v.pt2"
    assert main(_cli("format_v1_vgg16_classifier", "--torch-export", str(pt2))) == 0
    lines = capsys.readouterr().out.splitlines()
    notes = [ln for ln in lines if ln.startswith("static")]
    assert len(notes) == 1 and "height" in notes[0] and "width" in notes[0], lines
    assert "layer 'fc6'" in notes[0]
    assert "dynamic batch)" in lines[-1], lines
    program = torch.export.load(pt2).module()
    assert program(torch.zeros(3, 3, 32, 32))[0].shape[0] == 3


@needs_torch_export
def test_static_fixes_every_size(tmp_path, capsys):
    pt2 = tmp_path / "c.pt2"
    assert main(_cli(CONV, "--torch-export", str(pt2), "--static")) == 0
    assert "static: --static" in capsys.readouterr().out
    program = torch.export.load(pt2)
    assert ex.program_axes(program, ["data"]) == {"data": ()}
    # torch.export's input check (height is fixed): a RuntimeError on torch 2.8, an
    # AssertionError on later ones
    with pytest.raises((AssertionError, RuntimeError), match="shape\\[2\\]|17"):
        program.module()(torch.zeros(2, 6, 20, 23))


@pytest.mark.parametrize("flag", ["--onnx", "--torch-export"])
def test_a_wrong_input_shape_is_one_line_naming_the_layer(tmp_path, capsys, flag):
    """Checked against the layers' shape rules before tracing: no tracer report, no 'submit a
    PR to PyTorch', no terminal colour codes, no file."""
    if flag == "--onnx":
        pytest.importorskip("onnxscript")
    out = tmp_path / ("x.onnx" if flag == "--onnx" else "x.pt2")
    assert main(_cli(CONV, flag, str(out), "--input", "data=2x5x17x23")) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert "\n" not in err and "\x1b[" not in err and "PyTorch" not in err, err
    assert "input shapes {'data': (2, 5, 17, 23)} do not fit the net" in err
    assert "layer 'conv_basic'" in err and "6 input channels" in err
    assert "exporting" not in captured.out and "tracing" not in captured.out
    assert list(tmp_path.iterdir()) == []


@needs_torch_export
def test_a_graph_that_holds_only_for_some_sizes_is_not_left_dynamic(tmp_path):
    """Padded pooling whose Caffe size rule the traced kernels match only for some sizes: the
    traced graph's guards fail at the probe sizes, so height and width stay static (ONNX would
    keep no such guard and silently give other sizes); the batch stays free."""
    lines: list[str] = []
    d = case_dir("layers_pooling")
    from caffe_import.net import CaffeNet

    net = CaffeNet(str(d / "net.prototxt"), str(d / "weights.caffemodel"))
    done = ex.write_export(net, tmp_path / "p.pt2", say=lines.append)
    notes = [ln for ln in lines if ln.startswith("static")]
    assert len(notes) == 1 and notes[0].startswith("static height, width: the traced graph "
                                                   "holds only for some sizes"), lines
    assert done.endswith("dynamic batch)"), done
