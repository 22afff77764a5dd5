"""``caffe-import codegen NET [WEIGHTS] -o DIR``: writes model.py (and model.safetensors), says
"wrote" after the check, refuses bad input with one line and exit 2."""
from __future__ import annotations

import importlib.util

import torch
from safetensors.torch import load_file

from caffe_import.cli import main
from caffe_import.net import CaffeNet
from support import case_dir

CASE = case_dir("voc_fcn32s_narrow")
NET, WEIGHTS = str(CASE / "net.prototxt"), str(CASE / "weights.caffemodel")


def _module(folder, class_name):
    spec = importlib.util.spec_from_file_location("cli_model", folder / "model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return getattr(module, class_name)


def test_it_writes_a_module_that_loads_its_weights(tmp_path, capsys):
    out = tmp_path / "fcn32s"
    assert main(["codegen", NET, WEIGHTS, "-o", str(out), "--class-name", "FCN32s"]) == 0
    said = capsys.readouterr().out.strip()
    assert said.startswith("wrote ") and "model.safetensors" in said
    model = _module(out, "FCN32s")()
    model.load_state_dict(load_file(str(out / "model.safetensors")))
    model.eval()
    x = torch.randn(1, 3, 61, 75)
    expected = CaffeNet(NET, WEIGHTS)(data=x)["score"]
    torch.testing.assert_close(model(x), expected, rtol=1e-5, atol=1e-4)


def test_without_weights_only_model_py(tmp_path, capsys):
    assert main(["codegen", NET, "-o", str(tmp_path)]) == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.py"]


def test_input_shapes_are_taken(tmp_path, capsys):
    assert main(["codegen", NET, "-o", str(tmp_path), "--input", "data=1x3x40x50"]) == 0
    assert "wrote" in capsys.readouterr().out


def test_bad_input_is_one_line_and_exit_2(tmp_path, capsys):
    cases = [["codegen", NET, "-o", str(tmp_path), "--class-name", "1x"],
             ["codegen", str(tmp_path / "none.prototxt"), "-o", str(tmp_path)],
             ["codegen", NET, "-o", str(tmp_path), "--input", "nope=1x3x4x4"],
             ["codegen", NET, str(tmp_path / "none.caffemodel"), "-o", str(tmp_path)]]
    for argv in cases:
        assert main(argv) == 2, argv
        err = capsys.readouterr().err
        assert err.startswith("caffe-import: error: ") and "Traceback" not in err, err
    assert not (tmp_path / "model.py").exists()
