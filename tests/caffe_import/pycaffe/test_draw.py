"""caffe_import.pycaffe.draw: pycaffe's net drawing (the graph as data; pydot renders it)."""
from __future__ import annotations

import gzip
import importlib.util
import json

import pytest
from google.protobuf import text_format

from caffe_import.proto import caffe_pb2
from caffe_import.pycaffe import draw
from support import ROOT

NET = ROOT / "tests" / "fixtures" / "pycaffe" / "fcn_release" / "voc-fcn32s" / "val.prototxt"
DRAW = ROOT / "tests" / "fixtures" / "pycaffe" / "draw"
BVLC = ROOT / "tests" / "fixtures" / "pycaffe" / "bvlc_tests"


def _net():
    return text_format.Parse(NET.read_text(), caffe_pb2.NetParameter())


def test_graph_spec_like_pycaffe():
    nodes, edges = draw.graph_spec(_net(), "LR", phase=caffe_pb2.TEST, display_lrm=True)
    label, style = nodes["conv1_1_Convolution"]
    assert label == r'"conv1_1\n(Convolution)\nkernel size: 3\nstride: 1\npad: 100\nlr mult: 1.0, 2.0"'
    assert style["fillcolor"] == "#FF5050"
    assert nodes["relu1_1_ReLU"][1] is draw.NEURON_LAYER_STYLE  # in place
    assert nodes["pool1_Pooling"][0].startswith('"pool1\\n(Pooling MAX)')
    assert {"src": "conv1_1_Convolution", "dst": "conv1_1_blob", "label": "64"} in edges
    assert draw.get_layer_label(_net().layer[1], "TB").count(r"\n") == 0


@pytest.mark.skipif(importlib.util.find_spec("pydot") or importlib.util.find_spec("pydotplus"),
                    reason="checks the message without pydot")
def test_drawing_without_pydot_says_what_it_needs(tmp_path):
    with pytest.raises(ImportError, match="pydot"):
        draw.draw_net_to_file(_net(), str(tmp_path / "n.png"))


def _as_pydot_sees_it(nodes, edges):
    """graph_spec's data as pycaffe's pydot graph names it (draw/dump.py): a node is named by
    its label; each edge joins two such names."""
    def name(key):
        return nodes[key][0].strip('"')
    listed = sorted([name(k), "None", str(style.get("fillcolor")), str(style.get("shape"))]
                    for k, (_, style) in nodes.items())
    joined = sorted([name(e["src"]), name(e["dst"]), e["label"].strip('"')] for e in edges)
    return [listed, joined]


def test_graph_is_real_pycaffes_for_bvlcs_nets():
    """Every net prototxt of BVLC's models/ and examples/ (tests/fixtures/pycaffe/bvlc_tests/)
    gives the nodes (label, colour, shape) and edges real pycaffe's get_pydot_graph gave
    (phase TEST, learning-rate multipliers shown; tests/fixtures/pycaffe/draw/)."""
    real = json.loads(gzip.decompress((DRAW / "expected.json.gz").read_bytes()))
    assert len(real) == 29
    for rel, expected in sorted(real.items()):
        net = text_format.Parse((BVLC / rel).read_text(), caffe_pb2.NetParameter())
        nodes, edges = draw.graph_spec(net, "LR", phase=caffe_pb2.TEST, display_lrm=True)
        assert _as_pydot_sees_it(nodes, edges) == expected, rel
