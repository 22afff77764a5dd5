"""The shipped schema module: fresh, wire-compatible with Caffe's field numbers, importable."""
from __future__ import annotations

import hashlib
import os
import sys
import importlib.util

import pytest
from google.protobuf import text_format

from caffe_import.proto import caffe_pb2
from support import ROOT

PROTO = ROOT / "caffe_import" / "proto" / "caffe.proto"


def _gen_proto():
    spec = importlib.util.spec_from_file_location("gen_proto", ROOT / "tools" / "gen_proto.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_shipped_module_matches_proto_hash():
    assert caffe_pb2.SOURCE_SHA256 == hashlib.sha256(PROTO.read_bytes()).hexdigest(), (
        "caffe_pb2.py is stale: run python tools/gen_proto.py")


def test_regenerating_gives_the_shipped_module(tmp_path):
    pytest.importorskip("grpc_tools")
    gen = _gen_proto()
    out, forks = tmp_path / "caffe_pb2.py", tmp_path / "forks"
    assert gen.main(["--out", str(out), "--forks-out", str(forks)]) == 0
    assert out.read_text() == (PROTO.parent / "caffe_pb2.py").read_text()
    units = sorted(p.parent for p in (ROOT / "caffe_import" / "forks").glob("*/delta.proto"))
    assert units and sorted(p.parent.name for p in forks.glob("*/delta_pb.py")) == [
        u.name for u in units]
    for unit in units:
        assert (forks / unit.name / "delta_pb.py").read_text() == (
            unit / "delta_pb.py").read_text(), f"{unit.name}: run python tools/gen_proto.py"


@pytest.mark.parametrize("message, field, number", [
    ("NetParameter", "layer", 100), ("NetParameter", "layers", 2), ("NetParameter", "input", 3),
    ("NetParameter", "input_shape", 8), ("NetParameter", "input_dim", 4),
    ("LayerParameter", "blobs", 7), ("LayerParameter", "param", 6),
    ("LayerParameter", "convolution_param", 106), ("LayerParameter", "crop_param", 144),
    ("LayerParameter", "input_param", 143), ("LayerParameter", "recurrent_param", 146),
    ("BlobProto", "data", 5), ("BlobProto", "double_data", 8), ("BlobProto", "shape", 7),
    ("V1LayerParameter", "blobs", 6), ("V1LayerParameter", "layer", 1),
    ("V1LayerParameter", "blobs_lr", 7), ("V0LayerParameter", "blobs", 50),
    ("SolverParameter", "type", 40), ("SolverParameter", "solver_type", 30),
    ("SolverParameter", "iter_size", 36), ("Datum", "float_data", 6),
])
def test_field_numbers_are_caffes(message, field, number):
    assert getattr(caffe_pb2, message).DESCRIPTOR.fields_by_name[field].number == number


def test_float_payloads_are_declared_packed():
    # Caffe writes these packed; a writer following the schema must too.
    for name in ("data", "diff", "double_data", "double_diff"):
        fd = caffe_pb2.BlobProto.DESCRIPTOR.fields_by_name[name]
        assert fd.GetOptions().packed
    assert caffe_pb2.BlobShape.DESCRIPTOR.fields_by_name["dim"].GetOptions().packed


def test_defaults_are_caffes():
    assert caffe_pb2.FillerParameter().type == "constant"
    assert caffe_pb2.FillerParameter().std == 1.0
    assert caffe_pb2.ConvolutionParameter().bias_term is True
    assert caffe_pb2.ConvolutionParameter().group == 1
    assert caffe_pb2.PoolingParameter().pool == caffe_pb2.PoolingParameter.MAX
    assert caffe_pb2.LRNParameter().k == 1.0 and caffe_pb2.LRNParameter().alpha == 1.0
    assert caffe_pb2.BatchNormParameter().eps == pytest.approx(1e-5)
    assert caffe_pb2.SolverParameter().type == "SGD"
    assert caffe_pb2.SolverParameter().regularization_type == "L2"
    assert caffe_pb2.SolverParameter().snapshot_format == caffe_pb2.SolverParameter.BINARYPROTO
    assert caffe_pb2.SolverParameter().delta == pytest.approx(1e-8)
    assert caffe_pb2.CropParameter().axis == 2
    assert caffe_pb2.LossParameter().normalization == caffe_pb2.LossParameter.VALID
    assert caffe_pb2.ParamSpec().lr_mult == 1.0


def test_enums_are_caffes():
    v1 = caffe_pb2.V1LayerParameter
    assert v1.CONVOLUTION == 4 and v1.DECONVOLUTION == 39 and v1.SOFTMAX_LOSS == 21
    assert v1.INNER_PRODUCT == 14 and v1.RELU == 18 and v1.DATA == 5
    assert caffe_pb2.TRAIN == 0 and caffe_pb2.TEST == 1
    assert caffe_pb2.SolverParameter.ADAM == 5


def test_text_and_wire_round_trip():
    text = """
    name: "n"
    layer { name: "c" type: "Convolution" bottom: "data" top: "c"
            param { lr_mult: 1 decay_mult: 1 }
            convolution_param { num_output: 2 kernel_size: 3 weight_filler { type: "xavier" } }
            include { phase: TRAIN stage: "s" } }
    """
    net = text_format.Parse(text, caffe_pb2.NetParameter())
    assert caffe_pb2.NetParameter.FromString(net.SerializeToString()) == net
    assert net.layer[0].include[0].phase == caffe_pb2.TRAIN


_COEXIST = """
from google.protobuf import descriptor_pb2, descriptor_pool
from caffe_import.proto import caffe_pb2
assert caffe_pb2.DESCRIPTOR.pool is not descriptor_pool.Default()
other = descriptor_pb2.FileDescriptorProto()
caffe_pb2.DESCRIPTOR.CopyToProto(other)  # pycaffe registers "caffe.proto" in the default pool
other.message_type[0].field[0].name = "not_dim"
descriptor_pool.Default().AddSerializedFile(other.SerializeToString())
assert caffe_pb2.BlobShape.DESCRIPTOR.fields[0].name == "dim"
assert list(caffe_pb2.BlobShape(dim=[1, 2]).dim) == [1, 2]
"""


def test_schema_lives_in_a_private_pool():
    """Another caffe.proto (pycaffe's, a fork's) in the default pool must not clash with ours.

    Run in a child so the default pool of the test process stays clean.
    """
    import subprocess

    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]))
    result = subprocess.run([sys.executable, "-c", _COEXIST], capture_output=True, text=True,
                            env=env)
    assert result.returncode == 0, result.stderr
