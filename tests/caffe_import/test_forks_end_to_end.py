"""A net read with a Caffe fork's schema through every surface: CaffeNet, caffemodels, the
converted artefact (which records the schema, so ``load`` rebuilds the net), export (which
refuses, listing them, layers a fixed-shape graph cannot express) and every CLI verb's
``--fork``/``--proto``."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from caffe_import import CaffeNet, load
from caffe_import import export as ex
from caffe_import.cli import main
from caffe_import.compat import TORCH_FOR_EXPORT
from caffe_import.convert import read_converted, save_converted
from caffe_import.errors import CaffeFormatError
from caffe_import.io import read_net, read_weights_net
from caffe_import.layers.base import CaffeLayer
from caffe_import.layers.registry import get, register
from caffe_import.proto.schema import schema_of
from support import ROOT
from support.versions import HAS_TORCH_EXPORT, needs_torch_export

# test-only layer types (real fork layers are tested in tests/caffe_import/layers): one reads a
# fork field (SSD's norm_param) and one is a detection head no exported graph can express
if get("TestForkScale") is None:
    @register("TestForkScale")
    class _TestForkScale(CaffeLayer):
        def __init__(self, param, bottom_shapes, phase="test"):
            super().__init__(param, bottom_shapes, phase)
            self.shared = param.norm_param.channel_shared
            self.add_blob((1,) if self.shared else (bottom_shapes[0][1],))

        def top_shapes(self, bottom_shapes):
            return [bottom_shapes[0]]

        def forward(self, x):
            w = self.blobs[0]
            return (x * (w if self.shared else w.view(1, -1, 1, 1)),)

    @register("TestDetectionHead")
    class _TestDetectionHead(CaffeLayer):
        export_unsupported = "a data-dependent number of boxes"

        def top_shapes(self, bottom_shapes):
            return [bottom_shapes[0]]

        def forward(self, x):  # a data-dependent Python int: no exporter can trace this
            return (x * float(int(torch.count_nonzero(x)) >= 0),)

NET = '''name: "forky"
input: "data" input_shape { dim: 1 dim: 2 dim: 3 dim: 3 }
layer { name: "s" type: "TestForkScale" bottom: "data" top: "s"
        norm_param { across_spatial: false channel_shared: false } }
layer { name: "d" type: "TestDetectionHead" bottom: "s" top: "d" }
'''


@pytest.fixture()
def files(tmp_path):
    net_path = tmp_path / "net.prototxt"
    net_path.write_text(NET)
    net = CaffeNet(str(net_path), fork="ssd")
    with torch.no_grad():
        net.params["s"][0].copy_(torch.tensor([2.0, 3.0]))
    weights = tmp_path / "w.caffemodel"
    net.save_weights(weights)
    return net_path, weights


def test_caffenet_reads_fork_fields_and_its_caffemodel(files):
    net_path, weights = files
    net = CaffeNet(str(net_path), str(weights))  # default schema: no fork named
    assert schema_of(net.net_param).name == "default" and not net.layer("s").shared
    out = net(data=torch.ones(1, 2, 3, 3), outputs=["s"])["s"]
    assert out[0, :, 0, 0].tolist() == [2.0, 3.0]


@pytest.mark.parametrize("suffix", [".pt", ".safetensors"])
def test_artefact_records_the_schema_and_load_rebuilds_the_net(files, tmp_path, suffix):
    net_path, weights = files
    net = CaffeNet(str(net_path), str(weights), fork="ssd")
    path = tmp_path / f"model{suffix}"
    save_converted(net, path)
    payload = read_converted(path)
    assert payload["schema"] == "ssd" and payload["format_version"] == 2
    back = load(path)
    assert schema_of(back.net_param).name == "ssd"
    assert back.net_param.layer[1].norm_param.HasField("channel_shared")
    x = torch.randn(1, 2, 3, 3)
    assert torch.equal(back(data=x)["d"], net(data=x)["d"])


def test_bvlc_nets_keep_artefact_version_1(tmp_path):
    net = CaffeNet('input: "x" input_shape { dim: 1 dim: 1 } layer { name: "r" type: "ReLU" bottom: "x" top: "r" }')
    save_converted(net, tmp_path / "m.pt")
    payload = read_converted(tmp_path / "m.pt")
    assert payload["format_version"] == 1 and "schema" not in payload


@needs_torch_export
def test_export_lists_the_layers_it_cannot_express_and_exports_the_part_before(files):
    net_path, weights = files
    net = CaffeNet(str(net_path), str(weights))
    with pytest.raises(CaffeFormatError) as info:
        ex.export_onnx(net, "never.onnx")
    msg = str(info.value)
    assert "ONNX cannot express 1 layer(s)" in msg and "layer 'd' (TestDetectionHead)" in msg
    assert "--output" in msg and "s" in msg
    with pytest.raises(CaffeFormatError, match="torch.export cannot express"):
        ex.export_program(net)
    x = torch.randn(1, 2, 3, 3)
    assert "d" in net(outputs=["d"], data=x)  # a run plan made before the export ...
    program = ex.export_program(net, outputs=["s"])  # the part before the head exports
    assert ex.verify_program(program, net, None, ["s"])["s"] == 0
    assert "d" in net(outputs=["d"], data=x)  # ... and one after it run every layer again


@pytest.mark.torch_export  # its export verb; on an older torch the one-line refusal
def test_every_cli_verb_takes_fork_and_proto(files, tmp_path, capsys):
    net_path, weights = files
    assert main(["inspect", str(net_path), "--fork", "ssd", "--json"]) == 0
    assert '"schema": "ssd"' in capsys.readouterr().out
    out = tmp_path / "m.pt"
    assert main(["convert", str(net_path), str(weights), "-o", str(out), "--fork", "ssd"]) == 0
    assert read_converted(out)["schema"] == "ssd"
    ref = tmp_path / "ref.h5"
    np.save(tmp_path / "x.npy", np.ones((1, 2, 3, 3), np.float32))
    assert main(["dump", str(net_path), str(weights), "-i", f"data={tmp_path / 'x.npy'}",
                 "-o", str(ref), "--fork", "ssd"]) == 0
    assert main(["parity", str(net_path), str(weights), str(ref), "--fork", "ssd"]) == 0
    export = ["export", str(net_path), str(weights), "--torch-export", str(tmp_path / "p.pt2"),
              "--output", "s", "--fork", "ssd"]
    if HAS_TORCH_EXPORT:
        assert main(export) == 0
    else:  # the one-line refusal naming the torch it needs
        assert main(export) == 2 and f"needs torch >= {TORCH_FOR_EXPORT}" in capsys.readouterr().err
    capsys.readouterr()
    assert main(["inspect", str(net_path), "--fork", "nope"]) == 2
    assert "unknown Caffe fork 'nope'" in capsys.readouterr().err
    assert main(["inspect", str(net_path), "--proto", str(tmp_path / "missing.proto")]) == 2
    assert main(["solver-parity", "--help"]) == 0 and "--fork" in capsys.readouterr().out


def test_bvlc_schema_reports_the_fork_field_and_missing_types_in_one_cli_error(files, capsys):
    net_path, weights = files
    assert main(["convert", str(net_path), str(weights), "-o", "x.pt", "--fork", "bvlc"]) == 2
    err = capsys.readouterr().err
    assert "unknown field 'norm_param'" in err and "--fork ssd" in err


def test_fcn_repro_verbs_that_read_a_prototxt_take_fork_and_proto(capsys):
    from fcn_repro.cli import main as fcn_main

    for verb in ("infer", "eval"):
        assert fcn_main([verb, "--help"]) == 0
        out = capsys.readouterr().out
        assert "--fork NAME" in out and "--proto FILE" in out


def test_zoo_matching_reads_fork_nets():
    from caffe_import.io import read_net
    from fcn_repro.zoo.match import matching_models
    from support.fork_nets import DEPLOY

    net = read_net(DEPLOY / "pspnet50_ade20k" / "deploy.prototxt")
    assert matching_models(net, None) == []  # no FCN computes PSPNet; no cross-schema copy fails


def test_convert_to_caffemodel_keeps_the_forks_numbers_and_to_onnx_refuses_the_head(files, tmp_path, capsys):
    from caffe_import.io import read_weights_net

    net_path, weights = files
    out = tmp_path / "copy.caffemodel"
    assert main(["convert", str(net_path), str(weights), "-o", str(out), "--fork", "ssd"]) == 0
    assert b"\xf2\x0c" in out.read_bytes()  # norm_param: field 206, as SSD's Caffe writes it
    layer = read_weights_net(out, fork="ssd").layer[1]
    assert layer.norm_param.HasField("channel_shared") and not layer.norm_param.channel_shared
    capsys.readouterr()
    assert main(["convert", str(net_path), str(weights), "-o", str(tmp_path / "m.onnx")]) == 2
    assert "layer 'd' (TestDetectionHead)" in capsys.readouterr().err


def test_run_reads_a_scripts_nets_with_the_named_fork(files, tmp_path, capsys):
    net_path, _ = files
    script = tmp_path / "script.py"
    script.write_text("import sys\nimport caffe\nfrom caffe_import.io import read_net\n"
                      "from caffe_import.proto.schema import schema_of\n"
                      "net = caffe.Net(sys.argv[1], caffe.TEST)\n"
                      "print('SCHEMA', schema_of(net.caffe_net.net_param).name)\n"
                      "print('PB2', caffe.proto.caffe_pb2.NetParameter.DESCRIPTOR.file.name)\n"
                      "print('LIBRARY', schema_of(read_net(sys.argv[1])).name)\n")
    assert main(["run", "--fork", "ssd", str(script), str(net_path)]) == 0
    out = capsys.readouterr().out
    # the script's caffe follows the fork; the library's own readers still choose by content
    assert "SCHEMA ssd" in out and "PB2 caffe_import/ssd/caffe.proto" in out
    assert "LIBRARY default" in out
    assert main(["run", str(script), str(net_path)]) == 0
    out = capsys.readouterr().out
    assert "SCHEMA default" in out and "LIBRARY default" in out


def test_convert_to_a_caffemodel_writes_the_numbers_of_the_fork_the_fields_belong_to(tmp_path):
    # no --fork: the net's fields are all SSD's, so the file is what SSD's Caffe writes
    # (this once asked for --fork ssd)
    case = ROOT / "tests" / "fixtures" / "forks" / "ssd" / "mobilenet_ssd_deploy_narrow"
    out = tmp_path / "o.caffemodel"
    assert main(["convert", str(case / "net.prototxt"), str(case / "weights.caffemodel"),
                 "-o", str(out)]) == 0
    back = {l.name: l for l in read_weights_net(out, fork="ssd").layer}
    mine = read_net(case / "net.prototxt", fork="ssd")
    head = next(l for l in mine.layer if l.type == "DetectionOutput")
    assert back[head.name].detection_output_param == head.detection_output_param
    assert back[head.name].detection_output_param.num_classes > 0
