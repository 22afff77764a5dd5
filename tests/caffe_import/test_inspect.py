"""The inspect library: one file -> a JSON-ready description, its text, and the layer types
caffe_import lacks (the ``caffe-import inspect`` verb is tested in cli/test_inspect.py)."""
from __future__ import annotations

import json

import pytest

from caffe_import.errors import CaffeFormatError
from caffe_import.inspect import FileInfo, inspect, render
from support import FIXTURES, case_dir

FORK_FIXTURES = FIXTURES.parent / "forks"

NET = """
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 1 dim: 2 dim: 2 } } }
layer { name: "frob" type: "TestFrob" bottom: "data" top: "y" }
layer { name: "acc" type: "TrainOnlyFrob" bottom: "y" top: "acc" include { phase: TRAIN } }
"""


def test_a_caffemodel_is_described_with_layers_and_totals():
    path = case_dir("format_v1_vgg16_classifier") / "weights.caffemodel"
    info = inspect(path)
    assert isinstance(info, FileInfo) and info.file == str(path)
    data = info.as_dict()
    assert data["format"] == "caffemodel" and data["version"] == "V1"
    assert data["param_count"] == 134638
    json.dumps(data)  # JSON-ready as it is
    text = info.text()
    assert text == render(data) and text.splitlines()[0] == f"{path}: caffemodel, V1"
    assert "total: 134,638 params" in text
    assert info.unknown_layer_types() == []  # only net prototxts are judged


def test_a_net_prototxt_names_its_unimplemented_types_by_phase(tmp_path):
    (tmp_path / "net.prototxt").write_text(NET)
    info = inspect(tmp_path / "net.prototxt")
    assert info.as_dict()["version"] == "current"
    assert [r["test"] for r in info.as_dict()["layers"]] == [True, True, False]
    assert info.unknown_layer_types() == ["'frob' (type 'TestFrob')"]
    assert info.train_only_unknown_types() == ["'acc' (type 'TrainOnlyFrob')"]


def test_a_solver_prototxt_is_told_from_a_net():
    info = inspect(case_dir("solver_fcn32s_narrow") / "solver.prototxt")
    assert info.as_dict()["format"] == "solver prototxt" and "base_lr" in info.text()


def test_unknown_and_missing_files_raise(tmp_path):
    (tmp_path / "junk").write_bytes(b"\x00\x01junk")
    with pytest.raises(CaffeFormatError, match="not a Caffe file"):
        inspect(tmp_path / "junk")
    with pytest.raises(FileNotFoundError):
        inspect(tmp_path / "absent.caffemodel")
    with pytest.raises(CaffeFormatError, match="folder"):
        inspect(tmp_path)


@pytest.mark.parametrize("path, schema", [
    (case_dir("layers_conv") / "weights.caffemodel", "bvlc"),  # a plain Caffe caffemodel
    (FORK_FIXTURES / "ssd" / "layers_normalize" / "weights.caffemodel", "ssd"),
    (FORK_FIXTURES / "deploy" / "ssd300_vgg16" / "deploy.prototxt", "ssd"),
    (FORK_FIXTURES / "deploy" / "segnet" / "deploy.prototxt", "segnet or segnet-cudnn5"),
])
def test_the_schema_shown_is_the_one_the_files_fields_belong_to(path, schema):
    info = inspect(path)
    assert info.as_dict()["schema"] == schema
    lines = [line.strip() for line in info.text().splitlines() if "schema:" in line]
    assert lines == ([] if schema == "bvlc" else [f"schema: {schema} (Caffe fork fields; "
                                                   "docs/forks.md)"])


def test_a_net_prototxt_gets_its_blob_shapes_from_a_build(tmp_path):
    """Built as CaffeNet builds it (``input_shapes`` for what the file leaves open), without
    weights; a net that does not build says why instead."""
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "in" type: "Input" top: "x" }\n'
        'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n')
    data = inspect(tmp_path / "net.prototxt").as_dict()
    assert "input_shapes" in data["shapes_unknown"] and "inputs" not in data
    data = inspect(tmp_path / "net.prototxt", input_shapes={"x": (2, 3)}).as_dict()
    assert data["inputs"] == ["x 2x3"] and data["layers"][1]["top_shapes"] == [[2, 3]]
    assert "x -> y (2x3)" in render(data)
    with pytest.raises(CaffeFormatError, match="no input blob 'z'"):
        inspect(tmp_path / "net.prototxt", input_shapes={"x": (2, 3), "z": (1,)})


def test_a_misspelt_layer_type_beside_an_unknown_field_gets_its_close_name(tmp_path):
    """The net's one complete error, as building reports it: a typo'd type is offered the
    type it is close to, not a @register recipe."""
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "in" type: "Input" top: "x" input_param { shape { dim: 1 dim: 1 } } }\n'
        'layer { name: "c" type: "Convolutoin" bottom: "x" top: "y" no_such_field: 1 }\n')
    with pytest.raises(CaffeFormatError, match="did you mean 'Convolution'") as err:
        inspect(tmp_path / "net.prototxt")
    assert "no_such_field" in str(err.value) and "@register" not in str(err.value)
