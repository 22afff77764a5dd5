"""The layer registry: classes registered per fork, looked up with the schema's fork (falling
back to the forks the entry ``uses``, then BVLC's), and the default mixture's choice among forks
that implement one type differently (caffe_import/layers/registry.py)."""
from __future__ import annotations

import ast

import pytest
from google.protobuf import text_format

from caffe_import.forks.deeplab.layers import Interp, MatWrite
from caffe_import.forks.pspnet.layers import PSPNetBN
from caffe_import.forks.segnet.layers import SegNetBN, SegNetUpsample
from caffe_import.forks.ssd.layers import Normalize
from caffe_import.forks.yolo.layers import DarknetPooling, UpsampleNearest
from caffe_import.layers import registry
from caffe_import.layers.base import CaffeLayer
from caffe_import.layers.pooling import Pooling
from caffe_import.proto.catalogue import FORKS
from caffe_import.proto.schema import get_schema
from support import ROOT


@pytest.mark.parametrize("type_name, fork, expect", [
    ("BN", "segnet", SegNetBN), ("BN", "segnet-cudnn5", SegNetBN),  # uses segnet's
    ("BN", "pspnet", PSPNetBN), ("Interp", "pspnet", Interp),        # pspnet uses deeplab's
    ("MatWrite", "deeplab-v1", MatWrite), ("Interp", "deeplab", Interp),
    ("Upsample", "yolo", UpsampleNearest), ("Upsample", "segnet", SegNetUpsample),
    ("Pooling", "yolo", DarknetPooling), ("Pooling", "segnet", Pooling),  # BVLC's fallback
    ("Pooling", None, Pooling), ("Pooling", "bvlc", Pooling), ("Pooling", "proto:x", Pooling),
    ("Normalize", None, Normalize), ("Normalize", "ssd", Normalize),
    ("Normalize", "bvlc", None), ("Normalize", "pspnet", None), ("BN", "deeplab", None),
])
def test_lookup_takes_the_fork_then_what_it_uses_then_bvlc(type_name, fork, expect):
    assert registry.get(type_name, fork=fork) is expect


@pytest.mark.parametrize("text, expect", [
    ('type: "BN" bn_param { bn_mode: INFERENCE }', SegNetBN),
    ('type: "BN" bn_param { frozen: true }', PSPNetBN),
    ('type: "BN" bn_param { frozen: true bn_mode: INFERENCE }', PSPNetBN),  # tie: first fork
    ('type: "BN"', PSPNetBN),
    ('type: "BN" top: "y" top: "mean" top: "var"', SegNetBN),  # SegNet's batch statistics
    ('type: "Upsample" bottom: "x" bottom: "mask"', SegNetUpsample),
    ('type: "Upsample" bottom: "x"', UpsampleNearest),
])
def test_the_mixture_builds_the_class_whose_claim_is_strongest(text, expect):
    param = text_format.Parse(text, get_schema().LayerParameter())
    chooser = registry.get(param.type)
    assert expect in chooser.candidates
    assert chooser.resolve(param) is expect
    assert registry.get(param.type, fork="proto:mine.proto") is chooser


@pytest.mark.parametrize("text, blobs, expect", [
    ('name: "b" type: "BN"', 2, SegNetBN), ('name: "b" type: "BN"', 4, PSPNetBN),
    ('name: "b" type: "BN" bn_param { }', 2, SegNetBN),
    ('name: "b" type: "BN"', None, PSPNetBN),   # no weights for it: the default order
    ('name: "b" type: "BN"', 3, PSPNetBN),      # a count neither holds: the default order
    ('name: "b" type: "BN" bn_param { frozen: true }', 2, PSPNetBN),  # the fields come first
])
def test_where_the_fields_do_not_decide_the_weights_blob_count_does(text, blobs, expect):
    param = text_format.Parse(text, get_schema().LayerParameter())
    asked = []
    chooser = registry.get("BN")
    assert registry.is_chooser(chooser) and not registry.is_chooser(Pooling)
    assert chooser.resolve(param, blob_count=lambda name: asked.append(name) or blobs) is expect


def test_the_weights_are_asked_only_when_the_candidates_hold_different_blob_counts():
    param = text_format.Parse('name: "u" type: "Upsample" bottom: "x"', get_schema().LayerParameter())
    asked = []
    assert registry.choose(registry.get("Upsample").candidates, param,
                           lambda name: asked.append(name)) is UpsampleNearest
    bn = text_format.Parse('name: "b" type: "BN" bn_param { bn_mode: LEARN }',
                           get_schema().LayerParameter())
    assert registry.choose(registry.get("BN").candidates, bn,
                           lambda name: asked.append(name)) is SegNetBN
    assert asked == []


def test_register_for_a_fork_names_a_shipped_fork_and_refuses_a_second_class():
    with pytest.raises(Exception, match="unknown Caffe fork"):
        registry.register("X", fork="nope")
    with pytest.raises(ValueError, match="shipped fork"):
        registry.register("X", fork="bvlc")
    with pytest.raises(RuntimeError, match="registered twice for fork segnet"):
        registry.register("BN", fork="segnet")(type("Other", (CaffeLayer,), {}))


def test_known_types_hold_bvlcs_and_the_forks():
    types = set(registry.known_types())
    assert {"Convolution", "Pooling", "BN", "Interp", "Normalize", "Reorg", "Axpy"} <= types


def test_no_core_layer_module_names_a_fork():
    """Fork knowledge lives in the fork units: no string in caffe_import/layers' code (its
    docstrings aside) is a shipped fork's name (reading a fork's field by name is fine)."""
    names = set(FORKS)
    for path in (ROOT / "caffe_import" / "layers").glob("*.py"):
        tree = ast.parse(path.read_text())
        docs = {id(node.body[0].value) for node in ast.walk(tree)
                if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef))
                and node.body and isinstance(node.body[0], ast.Expr)}
        found = [n.value for n in ast.walk(tree) if isinstance(n, ast.Constant)
                 and isinstance(n.value, str) and id(n) not in docs and n.value.lower() in names]
        assert not found, f"{path.name} names fork(s) {found}"


def test_variants_are_the_forks_own_classes_for_bvlc_types():
    assert registry.variant_forks({"Pooling", "Convolution", "BN"}) == ["yolo"]
    assert registry.variant_forks({"Convolution", "BN", "Upsample"}) == []
    assert registry.variant("Pooling", "yolo") is DarknetPooling
    assert registry.variant("Pooling", "ssd") is None and registry.variant("BN", "segnet") is None


def test_every_type_bvlc_registers_is_registered_for_bvlc():
    """Issue 16: all 61 types BVLC master 9b891540 registers (REGISTER_LAYER_CLASS /
    REGISTER_LAYER_CREATOR, listed once from its source in tests/fixtures) have a class here,
    with BVLC's schema too."""
    lines = (ROOT / "tests" / "fixtures" / "bvlc_layer_types.txt").read_text().splitlines()
    assert lines[0].startswith("# ") and "9b891540" in lines[0]
    bvlc = [t for t in lines[1:] if t]
    assert len(bvlc) == len(set(bvlc)) == 61
    assert [t for t in bvlc if registry.get(t, fork="bvlc") is None] == []
