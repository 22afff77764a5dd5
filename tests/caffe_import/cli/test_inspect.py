"""`caffe-import inspect`: format, version, layers and totals of any Caffe file."""
from __future__ import annotations

import importlib.util
import json

import pytest

from support import ROOT, case_dir
from support.versions import HAS_TORCH_EXPORT, needs_torch_export

from caffe_import.cli import main


def run_json(capsys, *paths):
    assert main(["inspect", "--json", *map(str, paths)]) == 0
    return json.loads(capsys.readouterr().out)


def test_v1_caffemodel(capsys):
    (info,) = run_json(capsys, case_dir("format_v1_vgg16_classifier") / "weights.caffemodel")
    assert info["format"] == "caffemodel" and info["version"] == "V1"
    assert info["legacy_blob_shapes"] is True
    fc6 = next(r for r in info["layers"] if r["name"] == "fc6")
    assert fc6["type"] == "InnerProduct" and fc6["params"] == [[1, 1, 256, 32], [1, 1, 1, 256]]
    assert info["param_count"] == 134638 and info["param_bytes"] == 4 * 134638


def test_several_kinds_at_once(capsys):
    infos = run_json(capsys,
                     case_dir("format_hdf5_fcn16s") / "weights.caffemodel.h5",
                     case_dir("format_mean_binaryproto") / "mean.binaryproto",
                     case_dir("format_v1_vgg16_classifier") / "net.prototxt",
                     case_dir("solver_fcn32s_narrow") / "solver.prototxt")
    h5, mean, net, solver = infos
    assert h5["format"] == "hdf5" and h5["param_count"] == 552734
    assert mean["format"] == "binaryproto" and mean["shape"] == [1, 3, 11, 13]
    assert net["format"] == "net prototxt" and net["version"] == "V1"
    assert net["layers"][0]["type"] == "Input"
    assert solver["format"] == "solver prototxt" and 'base_lr' in solver["solver"]


def test_text_output_lists_layers_and_totals(capsys):
    assert main(["inspect", str(case_dir("voc_fcn32s_narrow") / "weights.caffemodel")]) == 0
    out = capsys.readouterr().out
    assert "caffemodel, current" in out and "Convolution" in out and "total:" in out
    assert "data_data_0_split_0 -> conv1_1  [4x3x3x3 4]" in out  # Caffe stores its splits


def test_bad_file_is_reported_not_raised(tmp_path, capsys):
    bad = tmp_path / "x.caffemodel"
    bad.write_bytes(b"\x00\x01\x02garbage")
    assert main(["inspect", str(bad)]) == 2
    assert str(bad) in capsys.readouterr().err


def test_missing_file(tmp_path, capsys):
    assert main(["inspect", str(tmp_path / "none")]) == 2


@pytest.fixture(scope="module")
def own_outputs(tmp_path_factory):
    """What convert/export write, for the tiny deploy net: name -> path."""
    from caffe_import.convert import save_converted
    from caffe_import.export import write_export
    from caffe_import.net import CaffeNet
    from support.tiny_segmentation import write_deploy

    d = tmp_path_factory.mktemp("own")
    net = CaffeNet(*map(str, write_deploy(d)))
    out = {name: d / name for name in ("m.pt", "m.safetensors", "m.pt2", "m.onnx")}
    save_converted(net, out["m.pt"])
    save_converted(net, out["m.safetensors"])
    if not HAS_TORCH_EXPORT:
        return out
    write_export(net, out["m.pt2"], verify=False, say=lambda line: None)
    if importlib.util.find_spec("onnxscript"):
        write_export(net, out["m.onnx"], verify=False, say=lambda line: None, dynamic=False)
    return out


@pytest.mark.parametrize("name, kind", [("m.pt", "caffe_import artefact (.pt)"),
                                        ("m.safetensors", "caffe_import artefact (.safetensors)")])
def test_convert_artefacts_are_recognised(own_outputs, capsys, name, kind):
    (info,) = run_json(capsys, own_outputs[name])
    assert info["format"] == kind and info["version"] == "format version 1"
    assert info["name"] == "tiny_deploy" and info["phase"] == "test"
    assert [r["name"] for r in info["layers"]] == ["data", "conv", "relu", "score"]
    assert info["param_count"] == 4 * 27 + 4 + 2 * 4 + 2


@needs_torch_export
def test_exported_program_is_recognised(own_outputs, capsys):
    (info,) = run_json(capsys, own_outputs["m.pt2"])
    assert info["format"] == "torch.export program (.pt2)"
    assert "torch.export.load" in info["note"]


@needs_torch_export
def test_onnx_model_is_recognised(own_outputs, capsys):
    pytest.importorskip("onnx")
    if not own_outputs["m.onnx"].exists():
        pytest.skip("onnxscript is not installed")
    assert main(["inspect", str(own_outputs["m.onnx"])]) == 0
    text = capsys.readouterr().out
    assert "ONNX model, IR" in text and "inputs: data 1x3x8x8" in text
    assert "outputs: score 1x2x8x8" in text


PHASED = """name: "phased"
layer { name: "data" type: "Input" top: "data"
        input_param { shape { dim: 1 dim: 3 dim: 4 dim: 4 } } }
layer { name: "relu" type: "ReLU" bottom: "data" top: "y" }
layer { name: "acc" type: "TrainOnlyFrob" bottom: "y" top: "acc" include { phase: TRAIN } }
"""


def test_a_type_only_the_train_net_uses_is_a_note_not_a_failure(tmp_path, capsys):
    """DeepLab v1's deploy net has a TRAIN-only SegAccuracy: its TEST net builds, so inspect
    succeeds and says which layers another phase would lack."""
    (tmp_path / "net.prototxt").write_text(PHASED)
    assert main(["inspect", str(tmp_path / "net.prototxt")]) == 0
    err = capsys.readouterr().err
    assert "error" not in err and "'acc' (type 'TrainOnlyFrob')" in err
    (info,) = run_json(capsys, tmp_path / "net.prototxt")
    assert [r["test"] for r in info["layers"]] == [True, True, False]


def test_one_unreadable_file_among_several_leaves_the_others_shown(tmp_path, capsys):
    good = case_dir("format_mean_binaryproto") / "mean.binaryproto"
    assert main(["inspect", str(tmp_path / "absent.caffemodel"), str(good)]) == 2
    out, err = capsys.readouterr()
    assert "absent.caffemodel" in err and f"{good}: binaryproto" in out


def test_the_solvers_own_snapshot_state_is_recognised(tmp_path, capsys):
    """`fcn-repro train` snapshots `*.solverstate.safetensors` (caffe_import.solver's state)."""
    from caffe_import.net import CaffeNet
    from caffe_import.solver import Solver

    net = CaffeNet(case_dir("solver_fcn32s_narrow") / "train.prototxt", phase="train")
    solver = Solver("base_lr: 0.1 momentum: 0.9 lr_policy: 'fixed'", net=net)
    solver.save_state(tmp_path / "s_iter_0.solverstate.safetensors", learned_net="s.caffemodel")
    (info,) = run_json(capsys, tmp_path / "s_iter_0.solverstate.safetensors")
    assert info["format"] == "caffe_import solver state (.safetensors)"
    assert info["iter"] == 0 and info["learned_net"] == "s.caffemodel"
    assert info["history_blobs"] == len(solver.history) > 0


# ------------------------------------------------------------------- issue 17: what a net needs
def test_a_prototxt_shows_its_input_and_blob_shapes(tmp_path, capsys):
    from support.tiny_segmentation import DEPLOY

    (tmp_path / "net.prototxt").write_text(DEPLOY)
    assert main(["inspect", str(tmp_path / "net.prototxt")]) == 0
    out = capsys.readouterr().out
    assert "  inputs: data 1x3x8x8" in out
    assert "conv -> conv (1x4x8x8)" in out and "conv -> score (1x2x8x8)" in out
    (info,) = run_json(capsys, tmp_path / "net.prototxt", "-i", "data=2x3x5x6")
    assert info["inputs"] == ["data 2x3x5x6"]
    assert [r["top_shapes"] for r in info["layers"]][-1] == [[2, 2, 5, 6]]


def test_a_net_that_does_not_build_says_why_and_what_to_give(tmp_path, capsys):
    (tmp_path / "net.prototxt").write_text(
        'layer { name: "in" type: "Input" top: "x" }\n'
        'layer { name: "r" type: "ReLU" bottom: "x" top: "y" }\n')
    assert main(["inspect", str(tmp_path / "net.prototxt")]) == 0
    out = capsys.readouterr().out
    assert "blob shapes: not known, the TEST net does not build: layer 'in'" in out
    assert "--input NAME=1x3x500x500" in out and "input_shapes" not in out


def test_python_layers_are_flagged_with_what_they_need(capsys):
    net = ROOT / "tests" / "fixtures" / "forks" / "deploy" / "faster_rcnn_zf" / "deploy.prototxt"
    assert main(["inspect", str(net)]) == 0
    out = capsys.readouterr().out
    assert ("Python layer rpn.proposal_layer.ProposalLayer: needs a class; caffe_import has one "
            "built in: --builtin-python-layer rpn.proposal_layer.ProposalLayer") in out
    assert "enable_proposal_layer()" in out and "blob shapes: not known" in out
    (info,) = run_json(capsys, net, "--builtin-python-layer", "rpn.proposal_layer.ProposalLayer")
    (proposal,) = [r for r in info["layers"] if r["type"] == "Python"]
    assert proposal["python"] == {
        "module": "rpn.proposal_layer", "layer": "ProposalLayer", "registered": True,
        "builtin": "caffe_import.forks.fast_rcnn.layers.enable_proposal_layer()"}
    assert proposal["top_shapes"][0][1] == 5  # rois (R, 5), built


def test_stored_activations_are_read(capsys):
    """Caffe's reference.h5 and what `caffe-import dump` writes: the stored-activation format."""
    ref = case_dir("layers_conv") / "reference.h5"
    assert main(["inspect", str(ref)]) == 0
    out = capsys.readouterr().out
    assert f"{ref}: stored activations (parity reference), phase TEST" in out
    assert "  inputs: data 2x6x17x23" in out and "  blobs: " in out
    (info,) = run_json(capsys, case_dir("train_fcn8s_narrow") / "reference.h5")
    assert info["version"] == "phase TRAIN" and info["stored"]["diffs"]
    assert all(isinstance(s, list) for s in info["stored"]["blobs"].values())


def test_an_unknown_layer_type_is_an_error(tmp_path, capsys):
    (tmp_path / "net.prototxt").write_text(PHASED.replace("TrainOnlyFrob", "Frob").replace(
        " include { phase: TRAIN }", ""))
    assert main(["inspect", str(tmp_path / "net.prototxt")]) == 2
    assert "error:" in capsys.readouterr().err
