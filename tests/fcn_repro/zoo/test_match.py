"""fcn_repro.zoo.match: a prototxt is recognised as the zoo model whose deploy net it computes."""
from __future__ import annotations

from caffe_import.io import read_net
from caffe_import.proto import caffe_pb2
from fcn_repro import zoo
from fcn_repro.zoo.match import matching_models, net_signature
from support import ROOT

PROTOTXT = ROOT / "prototxt"


def _release_style(name: str) -> caffe_pb2.NetParameter:
    """The zoo's deploy net as a hand-edited release deploy.prototxt may differ from it: another
    net name, input shape and lr multipliers, and an in-place Dropout after fc6."""
    net = caffe_pb2.NetParameter()
    net.CopyFrom(zoo.get(name).deploy_net())
    net.name = "my deploy"
    net.layer[0].input_param.shape[0].dim[:] = [1, 3, 224, 300]
    for layer in net.layer:
        for p in layer.param:
            p.lr_mult = 0
    fc6 = next(i for i, layer in enumerate(net.layer) if layer.name == "relu6")
    drop = net.layer.add(name="drop6", type="Dropout", bottom=["fc6"], top=["fc6"])
    drop.dropout_param.dropout_ratio = 0.5
    layers = list(net.layer)
    layers.insert(fc6 + 1, layers.pop())
    del net.layer[:]
    net.layer.extend(layers)
    return net


def test_release_style_deploy_and_val_nets_are_recognised():
    assert matching_models(_release_style("voc-fcn8s")) == ["voc-fcn8s"]
    assert matching_models(read_net(PROTOTXT / "voc-fcn16s" / "val.prototxt")) == ["voc-fcn16s"]


def test_another_class_count_or_topology_matches_nothing():
    net = _release_style("voc-fcn8s")
    for layer in net.layer:
        if layer.name == "score_fr":
            layer.convolution_param.num_output = 5
    assert matching_models(net) == []
    assert net_signature(net) != net_signature(zoo.get("voc-fcn8s").deploy_net())


def test_nyud_color_and_hha_share_a_topology_the_modality_picks_one():
    net = zoo.get("nyud-fcn32s-hha").deploy_net()
    assert matching_models(net) == ["nyud-fcn32s-color", "nyud-fcn32s-hha"]
    assert matching_models(net, "hha") == ["nyud-fcn32s-hha"]
