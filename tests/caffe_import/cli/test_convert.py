"""`caffe-import convert -o OUT`: the format is the one OUT's name ends in, or a clear refusal."""
from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest
import torch

from caffe_import.cli import main
from caffe_import.convert import OUTPUT_FORMATS, read_converted, save_converted
from caffe_import.errors import UsageError
from caffe_import.io import detect, read_weights
from caffe_import.net import CaffeNet
from support.tiny_segmentation import write_deploy
from support.versions import needs_torch_export


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    return write_deploy(tmp_path_factory.mktemp("tiny"))


def convert(tiny, out, capsys) -> tuple[int, str, str]:
    rc = main(["convert", str(tiny[0]), str(tiny[1]), "-o", str(out)])
    captured = capsys.readouterr()
    return rc, captured.out, captured.err


@pytest.mark.parametrize("name", ["m.onnxx", "model", "m.pth", "m.caffemodel.zip", "m.h5", ".pt"])
def test_a_name_that_says_no_known_format_is_refused(tiny, tmp_path, capsys, name):
    rc, _, err = convert(tiny, tmp_path / name, capsys)
    assert rc == 2 and err.startswith("caffe-import: error: ") and "Traceback" not in err
    assert all(ending in err for ending in OUTPUT_FORMATS), err
    assert not (tmp_path / name).exists()


@pytest.mark.parametrize("name, kind", [("m.caffemodel", "caffemodel"), ("M.CAFFEMODEL.H5", "hdf5")])
def test_caffe_weight_files_are_written_as_caffe_writes_them(tiny, tmp_path, capsys, name, kind):
    rc, out, _ = convert(tiny, tmp_path / name, capsys)
    assert rc == 0 and "Caffe" in out
    assert detect(tmp_path / name) == kind
    ours, theirs = read_weights(tmp_path / name), read_weights(tiny[1])
    assert list(ours) == list(theirs)
    for layer in theirs:
        for a, b in zip(ours[layer], theirs[layer]):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("name", ["m.pt", "m.safetensors"])
def test_artefacts_keep_their_endings(tiny, tmp_path, capsys, name):
    assert convert(tiny, tmp_path / name, capsys)[0] == 0
    assert read_converted(tmp_path / name)["net_prototxt"]


@needs_torch_export
def test_pt2_is_a_torch_export_program(tiny, tmp_path, capsys):
    rc, out, _ = convert(tiny, tmp_path / "m.pt2", capsys)
    assert rc == 0 and "matches eager" in out
    program = torch.export.load(str(tmp_path / "m.pt2"))
    x = torch.randn(1, 3, 8, 8)
    (got,) = program.module()(x)
    torch.testing.assert_close(got, CaffeNet(str(tiny[0]), str(tiny[1]))(data=x)["score"])


@needs_torch_export
def test_onnx_is_onnx_checked_with_onnxruntime_and_no_exporter_noise(tiny, tmp_path):
    """In a fresh process (the exporter's notes come once per process): each slow step is
    announced before it runs, and nothing else reaches the terminal."""
    pytest.importorskip("onnxscript")
    pytest.importorskip("onnxruntime")
    onnx = pytest.importorskip("onnx")
    out = tmp_path / "m.onnx"
    done = subprocess.run([sys.executable, "-m", "caffe_import", "convert", str(tiny[0]),
                           str(tiny[1]), "-o", str(out)], capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("exporting the net to ONNX for data 1x3x8x8")
    assert lines[1].startswith("checking m.onnx with onnxruntime")
    assert lines[2].startswith(f"wrote {out} (matches eager")
    assert done.stderr == ""
    onnx.checker.check_model(onnx.load(str(out)))


def test_save_converted_refuses_a_name_that_hides_the_form(tiny, tmp_path):
    net = CaffeNet(str(tiny[0]), str(tiny[1]))
    with pytest.raises(UsageError, match=r"\.pt or \.safetensors"):
        save_converted(net, tmp_path / "m.onnx")
    assert not (tmp_path / "m.onnx").exists()
